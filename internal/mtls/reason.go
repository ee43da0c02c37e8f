package mtls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
)

// Handshake failure reasons, the values of the reason label of
// meshward_tls_handshake_failures_total.
const (
	ReasonNotTLS       = "not_tls"
	ReasonNoClientCert = "no_client_cert"
	ReasonUntrusted    = "untrusted" // unknown CA or not an SVID
	ReasonExpired      = "expired"   // outside its validity window
	ReasonTrustDomain  = "wrong_trust_domain"
	ReasonKeyUsage     = "wrong_key_usage" // leaf not issued for its role
	ReasonUnauthorized = "unauthorized"
	ReasonProtocol     = "protocol"
	ReasonTimeout      = "timeout"
	ReasonOther        = "other"
)

// FailureReason classifies a handshake error into one of the Reason values.
func FailureReason(err error) string {
	var rhe tls.RecordHeaderError
	var ne net.Error
	switch {
	case errors.As(err, &rhe):
		return ReasonNotTLS
	case errors.Is(err, ErrNoPeerCertificate):
		return ReasonNoClientCert
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, ErrWrongTrustDomain):
		return ReasonTrustDomain
	case errors.Is(err, ErrKeyUsage):
		return ReasonKeyUsage
	case errors.Is(err, ErrUntrusted):
		return ReasonUntrusted
	case errors.Is(err, ErrUnauthorized):
		return ReasonUnauthorized
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "client didn't provide a certificate"),
		strings.Contains(msg, "certificate required"):
		return ReasonNoClientCert
	case strings.Contains(msg, "protocol version"),
		strings.Contains(msg, "no application protocol"),
		strings.Contains(msg, "unsupported application protocols"),
		strings.Contains(msg, "unsupported versions"):
		return ReasonProtocol
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return ReasonNotTLS
	}
	return ReasonOther
}

package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// tlsVersions are the versions crypto/tls can offer, newest first.
var tlsVersions = []struct {
	id   uint16
	name string
}{
	{tls.VersionTLS13, "TLS 1.3"},
	{tls.VersionTLS12, "TLS 1.2"},
	{tls.VersionTLS11, "TLS 1.1"},
	{tls.VersionTLS10, "TLS 1.0"},
}

// allSuites is every TLS 1.0-1.2 suite crypto/tls implements, secure and
// insecure, in a stable order (by ID).
func allSuites() []*tls.CipherSuite {
	s := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	s = slices.DeleteFunc(s, func(c *tls.CipherSuite) bool {
		// TLS 1.3 suites cannot be configured; they are always offered.
		return !slices.ContainsFunc(c.SupportedVersions, func(v uint16) bool { return v < tls.VersionTLS13 })
	})
	slices.SortFunc(s, func(a, b *tls.CipherSuite) int { return int(a.ID) - int(b.ID) })
	return s
}

// suiteWeakness says why a suite is weak and how bad that is; "" if it is
// not weak.
func suiteWeakness(id uint16) (reason string, sev int) {
	name := tls.CipherSuiteName(id)
	switch {
	case strings.Contains(name, "_RC4_"):
		return "RC4 is broken", 3
	case strings.Contains(name, "_3DES_"):
		return "3DES has 64-bit blocks (Sweet32)", 3
	case strings.HasPrefix(name, "TLS_RSA_"):
		return "RSA key exchange has no forward secrecy", 2
	case strings.Contains(name, "_CBC_"):
		return "CBC mode (padding-oracle history, MAC-then-encrypt)", 1
	}
	return "", 0
}

// attempt is one TLS handshake the probe makes.
type attempt struct {
	version uint16 // offered as both min and max
	suites  []uint16
	cert    *tls.Certificate // presented if the server asks; none if nil
	// session: after the handshake, send a request and read, to learn
	// whether the server keeps a session it set up (TLS 1.3 servers reject a
	// missing client certificate only after the client's handshake is done).
	session bool
}

// outcome is what one attempt saw.
type outcome struct {
	serverCert  bool     // the server sent its certificate: version and suite accepted
	chain       [][]byte // as sent
	requested   bool     // the server asked for a client certificate
	handshakeOK bool
	state       tls.ConnectionState
	err         error // handshake error
	// session outcome (only when attempt.session and the handshake completed)
	sessionKept   bool
	sessionDetail string
}

func (p *prober) handshake(ctx context.Context, a attempt) (outcome, error) {
	var o outcome
	conn, err := p.dial(ctx)
	if err != nil {
		return o, err
	}
	defer conn.Close()
	deadline := time.Now().Add(p.cfg.Timeout)
	_ = conn.SetDeadline(deadline)
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()

	cfg := &tls.Config{
		ServerName: p.cfg.Target.serverName(),
		// The probe looks at whatever chain it is given and verifies it
		// itself (against --bundle, at the injected time).
		InsecureSkipVerify: true, //nolint:gosec // verification is done by verifyChain
		MinVersion:         a.version,
		MaxVersion:         a.version,
		CipherSuites:       a.suites,
		Time:               p.cfg.Now,
		// Every attempt is a full handshake: a resumed one would not call
		// VerifyPeerCertificate, so the chain would go unrecorded. (There is
		// no ClientSessionCache either; this keeps it so if one is added.)
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			o.serverCert = true
			o.chain = raw
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			o.requested = true
			if a.cert != nil {
				return a.cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		o.err = err
		return o, nil
	}
	o.handshakeOK = true
	o.state = tc.ConnectionState()
	if a.session && o.requested {
		o.sessionKept, o.sessionDetail = p.trySession(tc)
	}
	return o, nil
}

// trySession sends a small HTTP request over an established TLS session and
// reads: an answer, or silence until the timeout, means the server kept the
// session; an alert, EOF or reset means it dropped it.
func (p *prober) trySession(tc *tls.Conn) (bool, string) {
	_ = tc.SetDeadline(time.Now().Add(p.cfg.Timeout))
	req := httpRequest(p.cfg.Target)
	if _, err := tc.Write([]byte(req)); err != nil {
		return false, "dropped the session: " + describeErr(err)
	}
	buf := make([]byte, 512)
	n, err := tc.Read(buf)
	if n > 0 {
		return true, fmt.Sprintf("answered %d bytes of application data", n)
	}
	if isTimeout(err) {
		return true, fmt.Sprintf("kept the session open for %s without an alert", p.cfg.Timeout)
	}
	return false, "dropped the session: " + describeErr(err)
}

// isRemoteAlert reports whether err is a TLS alert the server sent.
func isRemoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describeErr turns a network or TLS error into a short phrase without
// addresses (which would make reports differ from run to run).
func describeErr(err error) string {
	switch {
	case err == nil:
		return "no error"
	case isRemoteAlert(err):
		var op *net.OpError
		errors.As(err, &op)
		return "TLS alert: " + strings.TrimPrefix(op.Err.Error(), "tls: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return "answer is not TLS"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err // drop the addresses
	}
	return strings.TrimPrefix(err.Error(), "tls: ")
}

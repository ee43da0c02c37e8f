// Package identity names meshward's SPIFFE identities and fingerprints
// certificates. It is data only: no I/O, no signing (see ca) and no renewal
// (see source).
package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ServiceID is the identity of a workload:
// spiffe://<trust-domain>/ns/<namespace>/sa/<account>. The account is the
// service account the workload runs as, which is the service's name unless
// the mesh says otherwise (on Kubernetes the service account is not the
// Service). An empty namespace is "default". Both names must be
// DNS-label-like, so every ID it returns is one ParseServiceID splits back
// into the same namespace and account.
func ServiceID(td spiffeid.TrustDomain, namespace, account string) (spiffeid.ID, error) {
	if namespace == "" {
		namespace = "default"
	}
	if err := checkName("namespace", namespace); err != nil {
		return spiffeid.ID{}, err
	}
	if err := checkName("service", account); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(td, "ns", namespace, "sa", account)
}

// ParseServiceID splits a workload identity into namespace and account; ok
// is false for identities that are not of the /ns/N/sa/A form. It checks the
// form only, not the names: an identity a policy names may come from
// elsewhere.
func ParseServiceID(id spiffeid.ID) (namespace, account string, ok bool) {
	return parsePath(id.Path())
}

// ParseServiceIDString is ParseServiceID for an ID in text form (as status
// reports and grants carry it); ok is false when s is not a SPIFFE ID or not
// of the /ns/N/sa/A form.
func ParseServiceIDString(s string) (namespace, account string, ok bool) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return "", "", false
	}
	return ParseServiceID(id)
}

// parsePath does not allocate: policy decisions call it per request.
func parsePath(p string) (namespace, account string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/ns/")
	if !ok {
		return "", "", false
	}
	namespace, account, ok = strings.Cut(rest, "/sa/")
	if !ok || namespace == "" || account == "" || strings.Contains(namespace, "/") || strings.Contains(account, "/") {
		return "", "", false
	}
	return namespace, account, true
}

// NamespacePattern is how a namespace-wide source (every workload of
// namespace, as policy `from: [{namespace: N}]` names it) is shown:
// spiffe://<trust-domain>/ns/<namespace>/*. An empty namespace is
// "default".
func NamespacePattern(td spiffeid.TrustDomain, namespace string) string {
	if namespace == "" {
		namespace = "default"
	}
	return "spiffe://" + td.Name() + "/ns/" + namespace + "/*"
}

// ParseNamespacePattern returns the namespace of a NamespacePattern; ok is
// false for anything else.
func ParseNamespacePattern(s string) (namespace string, ok bool) {
	pre, ok := strings.CutSuffix(s, "/*")
	if !ok {
		return "", false
	}
	id, err := spiffeid.FromString(pre)
	if err != nil {
		return "", false
	}
	namespace, ok = strings.CutPrefix(id.Path(), "/ns/")
	if !ok || namespace == "" || strings.Contains(namespace, "/") {
		return "", false
	}
	return namespace, true
}

// ControlID is the control plane's own identity.
func ControlID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "meshward", "control")
}

// AdminID is the identity allowed to call admin APIs.
func AdminID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "meshward", "admin")
}

// checkName accepts DNS-label-like names (what Kubernetes allows for
// namespaces and service accounts), so IDs stay unambiguous.
func checkName(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(s) > 63 {
		return fmt.Errorf("%s %q is longer than 63 characters", field, s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%s %q: use lower-case letters, digits and inner dashes", field, s)
		}
	}
	return nil
}

// NewKeyAndCSR makes a workload's ECDSA P-256 key and a CSR for it. The
// CSR names no identity: the CA decides it (from the token or the SVID that
// proves the caller), and the key never leaves the caller.
func NewKeyAndCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	return key, csr, err
}

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// SPKIPin is the hex SHA-256 of a certificate's public key (its
// SubjectPublicKeyInfo); join tokens carry the root's pin.
func SPKIPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// SerialHex formats a certificate serial for logs and status.
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// Backdate is how far the CA sets NotBefore in the past to absorb clock
// skew between machines.
const Backdate = 30 * time.Second

// HalfLife is the moment a certificate issued by meshward's CA has lived
// half of its real lifetime (NotBefore is back-dated by Backdate, which does
// not count).
func HalfLife(c *x509.Certificate) time.Time {
	issued := c.NotBefore.Add(Backdate)
	if issued.After(c.NotAfter) {
		issued = c.NotBefore
	}
	return issued.Add(c.NotAfter.Sub(issued) / 2)
}

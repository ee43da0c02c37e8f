package probe

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// describeChain parses the raw chain the server sent and describes each
// certificate relative to now.
func describeChain(raw [][]byte, now time.Time) ([]Cert, []*x509.Certificate) {
	out := make([]Cert, 0, len(raw))
	var parsed []*x509.Certificate
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			sum := sha256.Sum256(der)
			out = append(out, Cert{SHA256: colonHex(sum[:]), ParseError: err.Error()})
			continue
		}
		parsed = append(parsed, c)
		out = append(out, describeCert(c, now))
	}
	return out, parsed
}

// describeCert summarizes one certificate relative to now.
func describeCert(c *x509.Certificate, now time.Time) Cert {
	sum := sha256.Sum256(c.Raw)
	d := Cert{
		Subject:    c.Subject.String(),
		Issuer:     c.Issuer.String(),
		Serial:     c.SerialNumber.Text(16),
		SHA256:     colonHex(sum[:]),
		IsCA:       c.IsCA,
		SelfSigned: bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil,
		NotBefore:  c.NotBefore.UTC(),
		NotAfter:   c.NotAfter.UTC(),
		Lifetime:   formatDuration(c.NotAfter.Sub(c.NotBefore)),
		Remaining:  formatDuration(c.NotAfter.Sub(now)),
		Signature:  c.SignatureAlgorithm.String(),
		DNSNames:   c.DNSNames,
	}
	d.KeyType, d.KeyBits, d.KeyCurve = describeKey(c.PublicKey)
	for _, ip := range c.IPAddresses {
		d.IPs = append(d.IPs, ip.String())
	}
	for _, u := range c.URIs {
		d.URIs = append(d.URIs, u.String())
	}
	d.SPIFFEID, d.TrustDomain, d.IDProblem = spiffeIdentity(c)
	return d
}

// spiffeIdentity returns the certificate's SPIFFE ID and trust domain, or why
// it has none that is valid (an X.509-SVID has exactly one URI SAN, a SPIFFE
// ID). A certificate with no URI SAN at all has no problem, just no ID.
func spiffeIdentity(c *x509.Certificate) (id, td, problem string) {
	switch {
	case len(c.URIs) == 0:
		return "", "", ""
	case len(c.URIs) > 1:
		return "", "", fmt.Sprintf("%d URI SANs, an X.509-SVID has exactly one", len(c.URIs))
	}
	sid, err := spiffeid.FromURI(c.URIs[0])
	if err != nil {
		return "", "", fmt.Sprintf("URI SAN %q is not a SPIFFE ID: %v", c.URIs[0].String(), err)
	}
	return sid.String(), sid.TrustDomain().Name(), ""
}

func describeKey(pub any) (typ string, bits int, curve string) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen(), ""
	case *ecdsa.PublicKey:
		return "ECDSA", k.Curve.Params().BitSize, k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519", 256, ""
	default:
		return "unknown", 0, ""
	}
}

// weakSignature reports whether alg is based on SHA-1 or MD5 (or MD2).
func weakSignature(alg string) bool {
	a := strings.ToUpper(alg)
	return strings.Contains(a, "SHA1") || strings.Contains(a, "MD5") || strings.Contains(a, "MD2")
}

// weakKey says why a key is too weak, or "" if it is not: RSA below 2048
// bits, EC below 256 bits.
func weakKey(c Cert) string {
	switch c.KeyType {
	case "RSA":
		if c.KeyBits < 2048 {
			return fmt.Sprintf("RSA %d-bit key (want at least 2048)", c.KeyBits)
		}
	case "ECDSA":
		if c.KeyBits < 256 {
			return fmt.Sprintf("EC %d-bit key (want at least 256)", c.KeyBits)
		}
	}
	return ""
}

// verifyChain verifies the parsed chain (leaf first) against the bundle's
// certificates as roots at time now. Host names are not checked: mesh
// endpoints are named by their SPIFFE ID, not a DNS name.
func verifyChain(chain, bundle []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("no certificate to verify")
	}
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

func colonHex(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", x)
	}
	return sb.String()
}

// formatDuration prints long durations in days ("397d 0h") and short ones as
// Go does, to the second. Negative durations get a leading '-'.
func formatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + formatDuration(-d)
	}
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		hours := (d % (24 * time.Hour)) / time.Hour
		return fmt.Sprintf("%dd %dh", days, hours)
	}
	return d.Truncate(time.Second).String()
}

package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzCheckCSR feeds arbitrary bytes to the CSR checks, seeded with good
// and bad CSRs from testdata/csr: it must never panic, and whatever it
// accepts must have a verifying signature, a strong key and no identity
// other than the caller's.
func FuzzCheckCSR(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/csr/*.der")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	want := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := CheckCSR(der, want)
		if err != nil {
			return
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
		if checkKey(csr.PublicKey) != nil {
			t.Fatal("accepted a weak key")
		}
		for _, u := range csr.URIs {
			if u.String() != want.String() {
				t.Fatalf("accepted a CSR for %s", u)
			}
		}
	})
}

// TestWriteCSRSeeds rewrites the seed corpus testdata/csr:
// MESHWARD_UPDATE_SEEDS=1 go test -run TestWriteCSRSeeds ./internal/identity/ca
func TestWriteCSRSeeds(t *testing.T) {
	if os.Getenv("MESHWARD_UPDATE_SEEDS") == "" {
		t.Skip("set MESHWARD_UPDATE_SEEDS=1 to rewrite testdata/csr")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(uris ...string) []byte {
		tmpl := &x509.CertificateRequest{}
		for _, s := range uris {
			u, _ := url.Parse(s)
			tmpl.URIs = append(tmpl.URIs, u)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if err := os.MkdirAll("testdata/csr", 0o755); err != nil {
		t.Fatal(err)
	}
	good := mk()
	seeds := map[string][]byte{
		"plain.der":     good,
		"own-id.der":    mk("spiffe://example.org/ns/default/sa/web"),
		"other-id.der":  mk("spiffe://example.org/ns/default/sa/payments"),
		"two-ids.der":   mk("spiffe://example.org/ns/default/sa/web", "spiffe://example.org/x"),
		"truncated.der": good[:len(good)/2],
		"empty.der":     {},
	}
	for name, b := range seeds {
		if err := os.WriteFile(filepath.Join("testdata/csr", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // the oracle's SHA-1 signatures
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzCheckCSR feeds arbitrary bytes to the CSR checks, seeded with good
// and bad CSRs from testdata/csr: it must never panic, and whatever it
// accepts the independent oracle (csrOracle, its own DER walk, never
// CheckCSR's helpers) must accept too: a verifying signature, a strong key
// and no identity other than the caller's.
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
		if _, err := CheckCSR(der, want); err != nil {
			return
		}
		if err := csrOracle(der, want.String()); err != nil && !errors.Is(err, errOracleUnknownAlg) {
			t.Fatalf("CheckCSR accepted a CSR the oracle refuses: %v", err)
		}
	})
}

// TestCSROracleSeeds pins the oracle's own verdict on the seeds, so a
// broken oracle (one that accepts everything) cannot make FuzzCheckCSR
// vacuous.
func TestCSROracleSeeds(t *testing.T) {
	t.Parallel()
	want := "spiffe://example.org/ns/default/sa/web"
	for name, ok := range map[string]bool{
		"plain.der": true, "own-id.der": true, "ed25519.der": true, "rsa2048.der": true,
		"other-id.der": false, "two-ids.der": false, "p224.der": false, "rsa1024.der": false,
		"bad-sig.der": false, "truncated.der": false, "empty.der": false,
	} {
		der, err := os.ReadFile(filepath.Join("testdata", "csr", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := csrOracle(der, want); (err == nil) != ok {
			t.Errorf("%s: oracle says %v; want accepted = %v", name, err, ok)
		}
	}
}

var errOracleUnknownAlg = errors.New("oracle: signature algorithm not modelled")

// csrOracle decides from the DER alone, with encoding/asn1 and the
// primitive verifiers, whether a PKCS#10 request is acceptable: the
// signature over the request info verifies with the request's own key
// (ECDSA or RSA PKCS#1 v1.5 with SHA-1/2, or Ed25519; anything else is
// errOracleUnknownAlg), the key is ECDSA P-256/384/521, RSA of at least
// 2048 bits or Ed25519, and every URI SAN of every subjectAltName
// extension is, byte for byte, want, at most once.
func csrOracle(der []byte, want string) error {
	var req struct {
		Info   asn1.RawValue
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &req); err != nil || len(rest) != 0 {
		return fmt.Errorf("outer structure: %v (%d trailing bytes)", err, len(rest))
	}
	var info struct {
		Version int
		Subject asn1.RawValue
		SPKI    struct {
			Alg pkix.AlgorithmIdentifier
			Key asn1.BitString
		}
		Attrs []struct {
			Type   asn1.ObjectIdentifier
			Values []asn1.RawValue `asn1:"set"`
		} `asn1:"tag:0,set"`
	}
	if rest, err := asn1.Unmarshal(req.Info.FullBytes, &info); err != nil || len(rest) != 0 {
		return fmt.Errorf("request info: %v", err)
	}
	pub, err := oracleKey(info.SPKI.Alg, info.SPKI.Key.RightAlign())
	if err != nil {
		return err
	}
	if err := oracleVerify(req.SigAlg.Algorithm, pub, req.Info.FullBytes, req.Sig.RightAlign()); err != nil {
		return err
	}
	var uris []string
	for _, a := range info.Attrs {
		if !a.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}) { // extensionRequest
			continue
		}
		for _, v := range a.Values {
			var exts []pkix.Extension
			if _, err := asn1.Unmarshal(v.FullBytes, &exts); err != nil {
				return fmt.Errorf("extensions: %w", err)
			}
			for _, e := range exts {
				if !e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) { // subjectAltName
					continue
				}
				var names []asn1.RawValue
				if _, err := asn1.Unmarshal(e.Value, &names); err != nil {
					return fmt.Errorf("subjectAltName: %w", err)
				}
				for _, n := range names {
					if n.Class == asn1.ClassContextSpecific && n.Tag == 6 { // uniformResourceIdentifier
						uris = append(uris, string(n.Bytes))
					}
				}
			}
		}
	}
	if len(uris) > 1 {
		return fmt.Errorf("%d URI SANs", len(uris))
	}
	if len(uris) == 1 && uris[0] != want {
		return fmt.Errorf("URI SAN %q is not %q", uris[0], want)
	}
	return nil
}

func oracleKey(alg pkix.AlgorithmIdentifier, key []byte) (any, error) {
	switch {
	case alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}): // id-ecPublicKey
		var curveOID asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &curveOID); err != nil {
			return nil, fmt.Errorf("EC parameters: %w", err)
		}
		curves := map[string]elliptic.Curve{
			"1.2.840.10045.3.1.7": elliptic.P256(), "1.3.132.0.34": elliptic.P384(), "1.3.132.0.35": elliptic.P521(),
		}
		c, ok := curves[curveOID.String()]
		if !ok {
			return nil, fmt.Errorf("EC curve %s", curveOID)
		}
		k, err := ecdsa.ParseUncompressedPublicKey(c, key)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return k, nil
	case alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}): // rsaEncryption
		var k struct{ N, E *big.Int }
		if _, err := asn1.Unmarshal(key, &k); err != nil {
			return nil, fmt.Errorf("RSA key: %w", err)
		}
		if k.N.Sign() <= 0 || k.N.BitLen() < 2048 || !k.E.IsInt64() || k.E.Int64() < 3 || k.E.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("RSA key of %d bits", k.N.BitLen())
		}
		return &rsa.PublicKey{N: k.N, E: int(k.E.Int64())}, nil
	case alg.Algorithm.Equal(asn1.ObjectIdentifier{1, 3, 101, 112}): // Ed25519
		if len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes", len(key))
		}
		return ed25519.PublicKey(key), nil
	}
	return nil, fmt.Errorf("key algorithm %s", alg.Algorithm)
}

func oracleVerify(alg asn1.ObjectIdentifier, pub any, signed, sig []byte) error {
	hashes := map[string]crypto.Hash{
		"1.2.840.10045.4.1": crypto.SHA1, "1.2.840.10045.4.3.2": crypto.SHA256, // ecdsa-with-*
		"1.2.840.10045.4.3.3": crypto.SHA384, "1.2.840.10045.4.3.4": crypto.SHA512,
		"1.2.840.113549.1.1.5": crypto.SHA1, "1.2.840.113549.1.1.11": crypto.SHA256, // sha*WithRSAEncryption
		"1.2.840.113549.1.1.12": crypto.SHA384, "1.2.840.113549.1.1.13": crypto.SHA512,
	}
	if alg.Equal(asn1.ObjectIdentifier{1, 3, 101, 112}) {
		k, ok := pub.(ed25519.PublicKey)
		if !ok || !ed25519.Verify(k, signed, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
		return nil
	}
	h, ok := hashes[alg.String()]
	if !ok {
		return fmt.Errorf("%w: %s", errOracleUnknownAlg, alg)
	}
	d := h.New()
	d.Write(signed)
	digest := d.Sum(nil)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if strings.HasPrefix(alg.String(), "1.2.840.10045.4.") && ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
	case *rsa.PublicKey:
		if strings.HasPrefix(alg.String(), "1.2.840.113549.1.1.") && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil {
			return nil
		}
	}
	return fmt.Errorf("signature %s does not verify with the request's key", alg)
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
	other := func(k crypto.Signer) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // a weak key the CA must refuse
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := mk()
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-1] ^= 1
	seeds := map[string][]byte{
		"bad-sig.der":   badSig,
		"p224.der":      other(p224),
		"rsa1024.der":   other(rsa1024),
		"rsa2048.der":   other(rsa2048),
		"ed25519.der":   other(ed),
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

package session

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/testpki"
)

const goodToken = "mwt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.00000000000000000000000000000000000000000000000000000000000000aa"

// TestFirstContact: the evidence decides the request, the pin and bundle
// what the control plane must chain to; a config that leaves nothing to
// authenticate the control plane by is refused before anything is sent.
func TestFirstContact(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "example.org")
	bundle := testpki.PEM(ca.Cert)
	leaf := ca.SVID(t, "spiffe://example.org/ns/default/sa/web").Certificates[0]
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})
	ev := &Evidence{Type: "test", Payload: []byte("x")}
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string // "" for none
		wantPin   bool
		wantRoots int
	}{
		{"join token", Config{Token: goodToken}, "", true, 0},
		{"join token and bundle", Config{Token: goodToken, Bundle: bundle}, "", true, 1},
		{"evidence and bundle", Config{Evidence: ev, Bundle: bundle}, "", false, 1},
		{"nothing", Config{}, attest.ErrBadToken.Error(), false, 0},
		{"evidence without bundle", Config{Evidence: ev}, "carries no CA pin", false, 0},
		{"token and evidence", Config{Token: goodToken, Evidence: ev, Bundle: bundle}, "not both", false, 0},
		{"evidence without type", Config{Evidence: &Evidence{Payload: []byte("x")}, Bundle: bundle}, "needs a type", false, 0},
		{"bundle not PEM", Config{Token: goodToken, Bundle: []byte("roots")}, "not PEM", false, 0},
		{"bundle truncated", Config{Token: goodToken, Bundle: bundle[:len(bundle)/2]}, "not PEM", false, 0},
		{"bundle of a key", Config{Token: goodToken, Bundle: keyPEM}, "want CERTIFICATE", false, 0},
		{"bundle of a leaf", Config{Token: goodToken, Bundle: testpki.PEM(leaf)}, "not a CA", false, 0},
		{"bundle blank", Config{Token: goodToken, Bundle: []byte("\n\n")}, "no certificates", false, 0},
		{"bundle corrupt", Config{Token: goodToken, Bundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 1}})}, "bundle", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, tr, err := firstContact(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tr.pin != "") != tc.wantPin || len(tr.roots) != tc.wantRoots {
				t.Errorf("trust: pin %q, %d roots; want pin %v, %d roots", tr.pin, len(tr.roots), tc.wantPin, tc.wantRoots)
			}
			if (req.GetToken() != "") != (tc.cfg.Token != "") || (req.GetAttestation() != nil) != (tc.cfg.Evidence != nil) {
				t.Errorf("request carries token %q, attestation %v", req.GetToken(), req.GetAttestation())
			}
			if tc.cfg.Evidence != nil && req.GetAttestation().GetType() != tc.cfg.Evidence.Type {
				t.Errorf("attestation type %q, want %q", req.GetAttestation().GetType(), tc.cfg.Evidence.Type)
			}
		})
	}
	if _, _, err := firstContact(Config{}); !errors.Is(err, attest.ErrBadToken) {
		t.Errorf("no evidence: %v, want ErrBadToken as before attestors", err)
	}
}

// TestVerifyFirst: the control plane's chain must hold the pin, verify
// under the given roots, or both when both are set, and name the control
// plane of the wanted trust domain.
func TestVerifyFirst(t *testing.T) {
	t.Parallel()
	root := testpki.NewCA(t, "example.org")
	inter := root.Intermediate(t)
	control := append(inter.SVID(t, "spiffe://example.org/meshward/control").Certificates, root.Cert)
	workload := append(inter.SVID(t, "spiffe://example.org/ns/default/sa/web").Certificates, root.Cert)
	rogue := testpki.NewCA(t, "example.org") // same name, another CA
	rogueControl := append(rogue.Intermediate(t).SVID(t, "spiffe://example.org/meshward/control").Certificates, rogue.Cert)
	pin, roguePin := identity.SPKIPin(root.Cert), identity.SPKIPin(rogue.Cert)
	roots, rogueRoots := []*x509.Certificate{root.Cert}, []*x509.Certificate{rogue.Cert}
	other := spiffeid.RequireTrustDomainFromString("other.org")
	tests := []struct {
		name  string
		chain []*x509.Certificate
		tr    trust
		want  spiffeid.TrustDomain
		ok    bool
	}{
		{"pin", control, trust{pin: pin}, spiffeid.TrustDomain{}, true},
		{"bundle", control, trust{roots: roots}, spiffeid.TrustDomain{}, true},
		{"bundle, chain without its root", control[:2], trust{roots: roots}, spiffeid.TrustDomain{}, true},
		{"pin and bundle", control, trust{pin: pin, roots: roots}, spiffeid.TrustDomain{}, true},
		{"nothing to check by", control, trust{}, spiffeid.TrustDomain{}, false},
		{"rogue, pin", rogueControl, trust{pin: pin}, spiffeid.TrustDomain{}, false},
		{"rogue, bundle", rogueControl, trust{roots: roots}, spiffeid.TrustDomain{}, false},
		{"rogue chain ending in the genuine root", append(rogueControl[:2:2], root.Cert), trust{roots: roots}, spiffeid.TrustDomain{}, false},
		{"pin right, bundle another CA", control, trust{pin: pin, roots: rogueRoots}, spiffeid.TrustDomain{}, false},
		{"bundle right, pin another CA", control, trust{pin: roguePin, roots: roots}, spiffeid.TrustDomain{}, false},
		{"not the control plane, bundle", workload, trust{roots: roots}, spiffeid.TrustDomain{}, false},
		{"not the control plane, pin", workload, trust{pin: pin}, spiffeid.TrustDomain{}, false},
		{"other trust domain wanted, bundle", control, trust{roots: roots}, other, false},
		{"no certificate", nil, trust{roots: roots}, spiffeid.TrustDomain{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			td, err := verifyFirst(tc.chain, tc.tr, tc.want, time.Now())
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && td.Name() != "example.org" {
				t.Errorf("trust domain %q, want example.org", td)
			}
		})
	}
}

// FuzzParseBundle: a bundle file never panics the parser, and what it
// accepts is CA certificates that parse the same once written out again.
func FuzzParseBundle(f *testing.F) {
	ca := testpki.NewCA(f, "example.org")
	f.Add(testpki.PEM(ca.Cert))
	f.Add(testpki.PEM(ca.Cert, ca.Intermediate(f).Cert))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		roots, err := ParseBundle(data)
		if err != nil {
			return
		}
		again, err := ParseBundle(testpki.PEM(roots...))
		if err != nil {
			t.Fatalf("re-encoded bundle does not parse: %v", err)
		}
		if len(again) != len(roots) {
			t.Fatalf("%d roots, %d after re-encoding", len(roots), len(again))
		}
		for i, c := range roots {
			if !c.IsCA || !c.Equal(again[i]) {
				t.Fatalf("root %d: IsCA %v, equal after re-encoding %v", i, c.IsCA, c.Equal(again[i]))
			}
		}
	})
}

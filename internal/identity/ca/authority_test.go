package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// clock is a settable fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }
func openStore(t *testing.T) *bolt.Store { return openStoreAt(t, t.TempDir(), nil) }

func openStoreAt(t *testing.T, dir string, s *store.Sealer) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newAuthority(t *testing.T, st Store, c *clock) *Authority {
	t.Helper()
	a, err := New(context.Background(), Config{TrustDomain: td, Store: st, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func csrFor(t *testing.T, key crypto.Signer, uris ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignFollowsX509SVIDSpec(t *testing.T) {
	c := newClock()
	a := newAuthority(t, openStore(t), c)
	id := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	key := p256(t)
	chain, err := a.Sign(context.Background(), csrFor(t, key), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if got := len(leaf.URIs); got != 1 || leaf.URIs[0].String() != id.String() {
		t.Fatalf("URI SANs = %v, want exactly %s", leaf.URIs, id)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %v, want digitalSignature only", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 {
		t.Errorf("ext key usage = %v", leaf.ExtKeyUsage)
	}
	if leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serial has %d bits; want random 128-bit", leaf.SerialNumber.BitLen())
	}
	if want := c.now().Add(-identity.Backdate); !leaf.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want back-dated %v", leaf.NotBefore, want)
	}
	if want := c.now().Add(DefaultWorkloadTTL); !leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", leaf.NotAfter, want)
	}
	// go-spiffe's own verifier accepts it against the bundle.
	bundle := x509bundle.FromX509Authorities(td, a.Bundle())
	gotID, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(c.now()))
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if gotID != id {
		t.Fatalf("verified id = %s", gotID)
	}
}

func TestSignRefuses(t *testing.T) {
	a := newAuthority(t, openStore(t), newClock())
	id := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := csrFor(t, p256(t))
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	tests := []struct {
		name string
		csr  []byte
		id   spiffeid.ID
		want string
	}{
		{"weak RSA key", csrFor(t, weak), id, "too weak"},
		{"weak curve", csrFor(t, p224), id, "not allowed"},
		{"bad signature", tampered, id, "bad csr"},
		{"garbage", []byte("not a csr"), id, "bad csr"},
		{"asks for another identity", csrFor(t, p256(t), "spiffe://example.org/ns/default/sa/payments"), id, "may only have"},
		{"two URI SANs", csrFor(t, p256(t), id.String(), "spiffe://example.org/x"), id, "exactly one URI SAN"},
		{"other trust domain", csrFor(t, p256(t)), spiffeid.RequireFromString("spiffe://evil.org/ns/default/sa/web"), "not in trust domain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Sign(context.Background(), tc.csr, tc.id, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRSA2048CSRGetsKeyEncipherment(t *testing.T) {
	a := newAuthority(t, openStore(t), newClock())
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := a.Sign(context.Background(), csrFor(t, k), spiffeid.RequireFromString("spiffe://example.org/ns/a/sa/b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if chain[0].KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Fatalf("key usage = %v", chain[0].KeyUsage)
	}
}

func TestCAPersistsAndSeals(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	sealer, _ := store.NewSealer(key)
	c := newClock()
	st := openStoreAt(t, dir, sealer)
	a := newAuthority(t, st, c)
	fp := a.SigningRootFP()
	st.Close()

	// Reopened with the same key: same CA.
	st2 := openStoreAt(t, dir, sealer)
	b := newAuthority(t, st2, c)
	if b.SigningRootFP() != fp {
		t.Fatal("CA changed across restart")
	}
	st2.Close()

	// Without the key: a clear error, not a new CA.
	st3 := openStoreAt(t, dir, nil)
	if _, err := New(context.Background(), Config{TrustDomain: td, Store: st3, Now: c.now}); err == nil || !strings.Contains(err.Error(), "MESHWARD_STORE_KEY") {
		t.Fatalf("err = %v, want it to ask for MESHWARD_STORE_KEY", err)
	}
	st3.Close()

	// Wrong trust domain for this data dir.
	st4 := openStoreAt(t, dir, sealer)
	if _, err := New(context.Background(), Config{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), Store: st4, Now: c.now}); err == nil {
		t.Fatal("loaded a CA for another trust domain")
	}

}

func TestIntermediateRotatesAtHalfLife(t *testing.T) {
	c := newClock()
	a := newAuthority(t, openStore(t), c)
	id := spiffeid.RequireFromString("spiffe://example.org/ns/a/sa/b")
	old, err := a.Sign(context.Background(), csrFor(t, p256(t)), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := a.Intermediate()
	if changed, _ := a.Tick(context.Background()); changed {
		t.Fatal("rotated before half-life")
	}
	c.add(DefaultIntermediateTTL/2 + time.Minute)
	changed, err := a.Tick(context.Background())
	if err != nil || !changed {
		t.Fatalf("Tick = %v, %v; want a rotation", changed, err)
	}
	if a.Intermediate().Equal(first) {
		t.Fatal("intermediate did not change")
	}
	// The old leaf still verifies (at a time it is valid), so rotation
	// breaks nobody.
	bundle := x509bundle.FromX509Authorities(td, a.Bundle())
	if _, _, err := x509svid.Verify(old, bundle, x509svid.WithTime(old[0].NotBefore.Add(time.Minute))); err != nil {
		t.Fatalf("old leaf no longer verifies: %v", err)
	}
}

func TestRootRotationAdvancesOnlyOnProof(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	a := newAuthority(t, openStore(t), c)
	oldFP := a.SigningRootFP()
	idA := spiffeid.RequireFromString("spiffe://example.org/ns/a/sa/a")
	oldLeaf, err := a.Sign(ctx, csrFor(t, p256(t)), idA, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartRootRotation(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.StartRootRotation(ctx); !errors.Is(err, ErrRotationInProgress) {
		t.Fatalf("second start: %v", err)
	}
	if len(a.Bundle()) != 2 || a.SigningRootFP() != oldFP {
		t.Fatal("prepare must add the new root and keep the old one signing")
	}
	newFP := identity.Fingerprint(a.Bundle()[1])

	lagging := []Holding{{SPIFFEID: idA.String(), BundleRoots: []string{oldFP}, SVIDRoot: oldFP}}
	if moved, _ := a.Advance(ctx, lagging); moved {
		t.Fatal("advanced while a workload lacks the new root")
	}
	if got := a.Lagging(lagging); len(got) != 1 {
		t.Fatalf("lagging = %v", got)
	}
	hasBoth := []Holding{{SPIFFEID: idA.String(), BundleRoots: []string{oldFP, newFP}, SVIDRoot: oldFP}}
	if moved, err := a.Advance(ctx, hasBoth); !moved || err != nil {
		t.Fatalf("Advance(prepare) = %v, %v", moved, err)
	}
	if a.Phase() != PhaseActivate || a.SigningRootFP() != newFP {
		t.Fatal("activate: the new root must sign")
	}
	newLeaf, err := a.Sign(ctx, csrFor(t, p256(t)), idA, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Both generations verify against the bundle: old and new talk.
	bundle := x509bundle.FromX509Authorities(td, a.Bundle())
	for _, chain := range [][]*x509.Certificate{oldLeaf, newLeaf} {
		if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(c.now())); err != nil {
			t.Fatalf("verify during rotation: %v", err)
		}
	}
	if moved, _ := a.Advance(ctx, hasBoth); moved {
		t.Fatal("advanced while a workload still has an old-root SVID")
	}
	renewed := []Holding{{SPIFFEID: idA.String(), BundleRoots: []string{oldFP, newFP}, SVIDRoot: newFP}}
	if moved, err := a.Advance(ctx, renewed); !moved || err != nil {
		t.Fatalf("Advance(activate) = %v, %v", moved, err)
	}
	if a.Phase() != PhaseRetire || !a.RetireAfter().Equal(oldLeaf[0].NotAfter) {
		t.Fatalf("retire after = %v, want the old leaf's expiry %v", a.RetireAfter(), oldLeaf[0].NotAfter)
	}
	if moved, _ := a.Advance(ctx, renewed); moved || len(a.Bundle()) != 2 {
		t.Fatal("old root removed while a certificate it signed is live")
	}
	c.t = oldLeaf[0].NotAfter
	if moved, err := a.Advance(ctx, renewed); !moved || err != nil {
		t.Fatalf("Advance(retire) = %v, %v", moved, err)
	}
	if a.Phase() != PhaseIdle || len(a.Bundle()) != 1 || identity.Fingerprint(a.Bundle()[0]) != newFP {
		t.Fatal("rotation did not finish with only the new root")
	}
}

// BenchmarkSign measures CSR checking + signing + logging the certificate
// (certs/s = 1e9 / ns/op), on a bolt store in a temp dir.
func BenchmarkSign(b *testing.B) {
	dir := b.TempDir()
	st, err := bolt.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := New(context.Background(), Config{TrustDomain: td, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		b.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Sign(context.Background(), der, id, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkSignParallel is issuance throughput with many workloads renewing
// at once (the store batches their log writes into shared fsyncs).
func BenchmarkSignParallel(b *testing.B) {
	st, err := bolt.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := New(context.Background(), Config{TrustDomain: td, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	id := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Sign(context.Background(), der, id, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

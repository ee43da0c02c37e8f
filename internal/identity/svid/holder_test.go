package svid

import (
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/testpki"
)

const webID = "spiffe://example.org/ns/default/sa/web"

var td = spiffeid.RequireTrustDomainFromString("example.org")

// installed is a Holder holding an SVID of ca's under ca's bundle.
func installed(t *testing.T, ca *testpki.CA, now func() time.Time) (*Holder, *x509svid.SVID) {
	t.Helper()
	h := New(td, now)
	old := ca.Intermediate(t).SVID(t, webID)
	if err := h.Install(old.Certificates, old.PrivateKey, []*x509.Certificate{ca.Cert}); err != nil {
		t.Fatalf("first install: %v", err)
	}
	got, err := h.GetX509SVID()
	if err != nil || got.ID.String() != webID {
		t.Fatalf("after the first install: %v, %v", got, err)
	}
	return h, got
}

// TestInstall: an SVID is published only once it verifies under the
// bundle it comes with (or the one held); a refused one leaves the SVID,
// the root it chains to and the bundle as they were, and no change is
// signalled.
func TestInstall(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "example.org")
	next := testpki.NewCA(t, "example.org") // the next root, same name
	other := testpki.NewCA(t, "other.org")
	nextSVID := next.Intermediate(t).SVID(t, webID)
	sameCA := ca.Intermediate(t).SVID(t, webID)
	tests := []struct {
		name     string
		svid     *x509svid.SVID
		key      bool // the SVID's own key (false: another SVID's)
		roots    []*x509.Certificate
		later    time.Duration // how far past now the install happens
		wantErr  bool
		wantRoot *x509.Certificate
	}{
		{"same CA, bundle held", sameCA, true, nil, 0, false, ca.Cert},
		{"same CA, bundle again", sameCA, true, []*x509.Certificate{ca.Cert}, 0, false, ca.Cert},
		{"next root, in the new bundle", nextSVID, true, []*x509.Certificate{ca.Cert, next.Cert}, 0, false, next.Cert},
		{"next root, bundle held lacks it", nextSVID, true, nil, 0, true, nil},
		{"next root, new bundle lacks it", nextSVID, true, []*x509.Certificate{ca.Cert}, 0, true, nil},
		{"same CA, new bundle lacks its root", sameCA, true, []*x509.Certificate{next.Cert}, 0, true, nil},
		{"outside the trust domain", other.SVID(t, "spiffe://other.org/ns/default/sa/web"), true, []*x509.Certificate{ca.Cert, other.Cert}, 0, true, nil},
		{"key not the leaf's", sameCA, false, nil, 0, true, nil},
		{"expired", sameCA, true, nil, 48 * time.Hour, true, nil},
		{"empty chain", &x509svid.SVID{PrivateKey: sameCA.PrivateKey}, true, nil, 0, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var clock struct {
				sync.Mutex
				at time.Time
			}
			clock.at = time.Now()
			now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.at }
			h, old := installed(t, ca, now)
			oldBundle, err := h.GetX509BundleForTrustDomain(td)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot := h.SVIDRoot()
			changed := h.Changed()
			clock.Lock()
			clock.at = clock.at.Add(tc.later)
			clock.Unlock()
			key := tc.svid.PrivateKey
			if !tc.key {
				key = nextSVID.PrivateKey
			}

			err = h.Install(tc.svid.Certificates, key, tc.roots)

			got, _ := h.GetX509SVID()
			bundle, _ := h.GetX509BundleForTrustDomain(td)
			if tc.wantErr {
				if err == nil {
					t.Fatal("installed")
				}
				if got != old || bundle != oldBundle || h.SVIDRoot() != oldRoot {
					t.Errorf("a refused install changed what the holder publishes: SVID %v, bundle changed %v, root %q (was %q)", got.Certificates[0].SerialNumber, bundle != oldBundle, h.SVIDRoot(), oldRoot)
				}
				select {
				case <-changed:
					t.Error("a refused install signalled a change")
				default:
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got.Certificates[0] != tc.svid.Certificates[0] || got.PrivateKey != key {
				t.Error("the holder does not publish the installed SVID")
			}
			if want := identity.Fingerprint(tc.wantRoot); h.SVIDRoot() != want {
				t.Errorf("SVIDRoot = %q, want %q", h.SVIDRoot(), want)
			}
			if _, _, err := x509svid.Verify(got.Certificates, bundle); err != nil {
				t.Errorf("published SVID does not verify under the published bundle: %v", err)
			}
			select {
			case <-changed:
			default:
				t.Error("no change signalled")
			}
		})
	}
}

// TestEmpty: before the first Install there is no SVID and no bundle, and
// an SVID cannot be installed without a bundle to verify it under.
func TestEmpty(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "example.org")
	h := New(td, nil)
	if _, err := h.GetX509SVID(); !errors.Is(err, ErrNoSVID) {
		t.Errorf("GetX509SVID = %v, want ErrNoSVID", err)
	}
	if _, err := h.GetX509BundleForTrustDomain(td); err == nil {
		t.Error("a bundle before any")
	}
	if h.SVIDRoot() != "" || h.BundleRoots() != nil {
		t.Errorf("roots before any: %q, %q", h.SVIDRoot(), h.BundleRoots())
	}
	s := ca.SVID(t, webID)
	if err := h.Install(s.Certificates, s.PrivateKey, nil); err == nil {
		t.Error("installed an SVID with no bundle to verify it under")
	}
	if _, err := h.GetX509SVID(); !errors.Is(err, ErrNoSVID) {
		t.Errorf("after a refused install: %v, want ErrNoSVID", err)
	}
}

// TestSetBundle: a new bundle is published with the SVID kept; the same
// roots, or none, change nothing; a bundle is only for its trust domain.
func TestSetBundle(t *testing.T) {
	t.Parallel()
	ca, next := testpki.NewCA(t, "example.org"), testpki.NewCA(t, "example.org")
	h, old := installed(t, ca, nil)
	root := h.SVIDRoot()
	for _, same := range [][]*x509.Certificate{nil, {ca.Cert}} {
		changed := h.Changed()
		if err := h.SetBundle(same); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
			t.Errorf("SetBundle(%d roots, as held) signalled a change", len(same))
		default:
		}
	}
	changed := h.Changed()
	if err := h.SetBundle([]*x509.Certificate{ca.Cert, next.Cert}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("a new bundle signalled no change")
	}
	want := []string{identity.Fingerprint(ca.Cert), identity.Fingerprint(next.Cert)}
	if got := h.BundleRoots(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("BundleRoots = %q, want %q", got, want)
	}
	if got, _ := h.GetX509SVID(); got != old || h.SVIDRoot() != root {
		t.Error("a new bundle changed the SVID")
	}
	if _, err := h.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.org")); err == nil {
		t.Error("a bundle for another trust domain")
	}
}

// TestConcurrentReads: handshakes read while renewals and bundle pushes
// install (run with -race). Every SVID a reader gets is whole (its key is
// its leaf's) and verifies under every bundle a reader gets, and a
// watcher of Changed sees the installs.
func TestConcurrentReads(t *testing.T) {
	t.Parallel()
	a, b := testpki.NewCA(t, "example.org"), testpki.NewCA(t, "example.org")
	both := []*x509.Certificate{a.Cert, b.Cert}
	svids := []*x509svid.SVID{a.Intermediate(t).SVID(t, webID), b.Intermediate(t).SVID(t, webID)}
	h := New(td, nil)
	if err := h.Install(svids[0].Certificates, svids[0].PrivateKey, both); err != nil {
		t.Fatal(err)
	}
	const installs = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s, err := h.GetX509SVID()
				if err != nil {
					t.Error(err)
					return
				}
				bundle, err := h.GetX509BundleForTrustDomain(td)
				if err != nil {
					t.Error(err)
					return
				}
				if !samePublicKey(s.Certificates[0].PublicKey, s.PrivateKey.Public()) {
					t.Error("an SVID whose key is not its leaf's")
					return
				}
				if _, _, err := x509svid.Verify(s.Certificates, bundle); err != nil {
					t.Errorf("an SVID read does not verify under the bundle read: %v", err)
					return
				}
				_ = h.SVIDRoot()
				_ = h.BundleRoots()
			}
		}()
	}
	seen := make(chan int)
	first := h.Changed() // closed by the first install below
	go func() {
		n := 0
		for ch := first; ; {
			select {
			case <-ch:
				n++
				ch = h.Changed()
			case <-done:
				select {
				case <-ch:
					n++
				default:
				}
				seen <- n
				return
			}
		}
	}()
	for i := range installs {
		s := svids[i%2]
		if err := h.Install(s.Certificates, s.PrivateKey, nil); err != nil {
			t.Fatal(err)
		}
		if err := h.SetBundle(both); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if n := <-seen; n == 0 {
		t.Error("a watcher of Changed saw none of the installs")
	}
}

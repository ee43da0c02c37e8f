package svid

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/identity"
)

// ErrNoSVID is returned before the first SVID is installed.
var ErrNoSVID = errors.New("no SVID yet")

// Holder is a workload's current SVID and trust bundle for one trust
// domain.
type Holder struct {
	td  spiffeid.TrustDomain
	now func() time.Time

	cur     atomic.Pointer[current]
	install sync.Mutex // one Install or SetBundle at a time: none is lost

	mu      sync.Mutex
	changed chan struct{} // closed on every SVID or bundle change
}

// current is what a Holder publishes, never changed once stored.
type current struct {
	svid   *x509svid.SVID     // nil before the first Install
	root   string             // fingerprint of the root svid verified under
	bundle *x509bundle.Bundle // nil before the first bundle
}

var (
	_ x509svid.Source   = (*Holder)(nil)
	_ x509bundle.Source = (*Holder)(nil)
)

// New returns an empty Holder for td; now (time.Now when nil) is the
// clock chains are verified at.
func New(td spiffeid.TrustDomain, now func() time.Time) *Holder {
	if now == nil {
		now = time.Now
	}
	h := &Holder{td: td, now: now, changed: make(chan struct{})}
	h.cur.Store(&current{})
	return h
}

// Install publishes a new SVID (chain leaf first, key its private key)
// with the bundle roots that came with it, or the current bundle when
// roots is empty. It verifies first: a leaf outside the trust domain, a
// key that is not the leaf's, or a chain that does not verify under that
// bundle is an error, and then neither the SVID nor the bundle changes.
func (h *Holder) Install(chain []*x509.Certificate, key crypto.Signer, roots []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("empty certificate chain")
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return err
	}
	if !id.MemberOf(h.td) {
		return fmt.Errorf("issued %s, outside trust domain %s", id, h.td)
	}
	if key == nil || !samePublicKey(chain[0].PublicKey, key.Public()) {
		return errors.New("private key does not match the SVID's public key")
	}

	h.install.Lock()
	defer h.install.Unlock()
	cur := h.cur.Load()
	bundle := h.next(cur.bundle, roots)
	if bundle == nil {
		return errors.New("issued SVID does not verify: no bundle")
	}
	// Check what we were given before using it; the verified chain ends
	// in the root this SVID belongs to.
	_, chains, err := x509svid.Verify(chain, bundle, x509svid.WithTime(h.now()))
	if err != nil {
		return fmt.Errorf("issued SVID does not verify: %w", err)
	}
	verified := chains[0]
	h.cur.Store(&current{
		svid:   &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key},
		root:   identity.Fingerprint(verified[len(verified)-1]),
		bundle: bundle,
	})
	h.notify()
	return nil
}

// SetBundle publishes new bundle roots and keeps the current SVID; empty
// roots, or the roots already held, change nothing. The control plane's
// bundle is taken as it comes (during a root rotation it may briefly not
// hold the current SVID's root: a renewal follows).
func (h *Holder) SetBundle(roots []*x509.Certificate) error {
	if len(roots) == 0 {
		return nil
	}
	h.install.Lock()
	defer h.install.Unlock()
	cur := h.cur.Load()
	next := h.next(cur.bundle, roots)
	if next == cur.bundle {
		return nil
	}
	h.cur.Store(&current{svid: cur.svid, root: cur.root, bundle: next})
	h.notify()
	return nil
}

// next is the bundle roots make: held when they are empty or the same.
func (h *Holder) next(held *x509bundle.Bundle, roots []*x509.Certificate) *x509bundle.Bundle {
	if len(roots) == 0 {
		return held
	}
	b := x509bundle.FromX509Authorities(h.td, roots)
	if held != nil && held.Equal(b) {
		return held
	}
	return b
}

// GetX509SVID implements x509svid.Source.
func (h *Holder) GetX509SVID() (*x509svid.SVID, error) {
	if v := h.cur.Load().svid; v != nil {
		return v, nil
	}
	return nil, ErrNoSVID
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (h *Holder) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b := h.cur.Load().bundle
	if b == nil || td != h.td {
		return nil, fmt.Errorf("no bundle for trust domain %q", td)
	}
	return b, nil
}

// TrustDomain is the workload's trust domain.
func (h *Holder) TrustDomain() spiffeid.TrustDomain { return h.td }

// SVIDRoot is the fingerprint of the root the current SVID verified under
// when it was installed ("" before the first): what a workload reports for
// root rotation.
func (h *Holder) SVIDRoot() string { return h.cur.Load().root }

// BundleRoots are the fingerprints of the bundle's roots, in its order.
func (h *Holder) BundleRoots() []string {
	b := h.cur.Load().bundle
	if b == nil {
		return nil
	}
	var out []string
	for _, c := range b.X509Authorities() {
		out = append(out, identity.Fingerprint(c))
	}
	return out
}

// Changed returns a channel closed at the next SVID or bundle change.
func (h *Holder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *Holder) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.changed)
	h.changed = make(chan struct{})
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Package mtlstest holds an in-memory, swappable SVID and bundle source for
// tests of TLS and the proxy: set a new SVID or bundle and the next handshake
// uses it, the way the workload client behaves after a rotation.
package mtlstest

import (
	"errors"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Source implements x509svid.Source and x509bundle.Source. The zero value
// has no SVID and no bundle; Set* may be called concurrently with handshakes.
type Source struct {
	svid    atomic.Pointer[x509svid.SVID]
	bundles atomic.Pointer[x509bundle.Set]
	// SVIDCalls counts GetX509SVID calls, for tests that prove the source is
	// read on every handshake.
	SVIDCalls atomic.Int64
}

// NewSource returns a source holding svid and the bundles.
func NewSource(svid *x509svid.SVID, bundles ...*x509bundle.Bundle) *Source {
	s := &Source{}
	s.SetSVID(svid)
	s.SetBundles(bundles...)
	return s
}

// SetSVID replaces the current SVID.
func (s *Source) SetSVID(svid *x509svid.SVID) { s.svid.Store(svid) }

// SetBundles replaces the whole bundle set.
func (s *Source) SetBundles(bundles ...*x509bundle.Bundle) {
	s.bundles.Store(x509bundle.NewSet(bundles...))
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.SVIDCalls.Add(1)
	v := s.svid.Load()
	if v == nil {
		return nil, errors.New("mtlstest: no svid")
	}
	return v, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	set := s.bundles.Load()
	if set == nil {
		return nil, errors.New("mtlstest: no bundles")
	}
	return set.GetX509BundleForTrustDomain(td)
}

// SVIDOrNil returns the current SVID or nil, without counting a call.
func (s *Source) SVIDOrNil() *x509svid.SVID { return s.svid.Load() }

package proxy

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// endpoint is one sidecar address of an upstream, with the load and health
// the balancer reads. Endpoints survive SetEndpoints when their address stays.
type endpoint struct {
	addr         string
	inflight     atomic.Int64
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = healthy
}

func (e *endpoint) healthy(now time.Time) bool {
	u := e.ejectedUntil.Load()
	return u == 0 || now.UnixNano() >= u
}

func (e *endpoint) eject(now time.Time, d time.Duration) {
	e.ejectedUntil.Store(now.Add(d).UnixNano())
}

// endpointSet is immutable once stored.
type endpointSet struct {
	eps []*endpoint
}

// pick returns the less loaded of two random healthy endpoints (power of
// two choices), never skip; when every endpoint is ejected it falls back to
// any endpoint but skip rather than failing (panic mode). nil when none.
func (s *endpointSet) pick(now time.Time, skip *endpoint) *endpoint {
	if s == nil {
		return nil
	}
	n := len(s.eps)
	switch n {
	case 0:
		return nil
	case 1:
		if e := s.eps[0]; e != skip {
			return e
		}
		return nil
	}
	i := rand.IntN(n)                 //nolint:gosec // load balancing, not security
	j := (i + 1 + rand.IntN(n-1)) % n //nolint:gosec
	a, b := s.eps[i], s.eps[j]
	okA := a != skip && a.healthy(now)
	okB := b != skip && b.healthy(now)
	switch {
	case okA && okB:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case okA:
		return a
	case okB:
		return b
	}
	var fallback *endpoint
	for k := range n {
		e := s.eps[(i+k)%n]
		if e == skip {
			continue
		}
		if e.healthy(now) {
			return e
		}
		if fallback == nil {
			fallback = e
		}
	}
	return fallback
}

package proxy

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// endpoint is one sidecar address of an upstream, with the load and health
// the balancer reads. Endpoints survive SetEndpoints when their address stays.
type endpoint struct {
	addr         string
	inflight     atomic.Int64
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = healthy
	rr           atomic.Uint32
	hosts        [poolConns]string
}

func (e *endpoint) healthy(now time.Time) bool {
	u := e.ejectedUntil.Load()
	return u == 0 || now.UnixNano() >= u
}

func (e *endpoint) eject(now time.Time, d time.Duration) {
	e.ejectedUntil.Store(now.Add(d).UnixNano())
}

// poolConns is how many HTTP/2 connections each endpoint is spread over.
// One connection serializes every stream through one TLS writer and one
// reader goroutine on each side; a few let both cores work.
const poolConns = 4

// poolHost is the URL host for a request to e: "p<k>.<addr>", so the HTTP/2
// transport (which pools by host) keeps poolConns connections per endpoint;
// poolAddr maps it back to the address to dial.
func (e *endpoint) poolHost(upgrade bool) string {
	if upgrade {
		return e.addr
	}
	k := e.rr.Add(1) % poolConns
	return e.hosts[k]
}

func newEndpoint(addr string) *endpoint {
	e := &endpoint{addr: addr}
	for k := range e.hosts {
		if strings.HasPrefix(addr, "[") {
			e.hosts[k] = addr // an IPv6 literal cannot take a label: one connection
			continue
		}
		e.hosts[k] = "p" + strconv.Itoa(k) + "." + addr
	}
	return e
}

// poolAddr strips the "p<k>." label poolHost added.
func poolAddr(host string) string {
	if len(host) > 3 && host[0] == 'p' && '0' <= host[1] && host[1] <= '9' && host[2] == '.' {
		return host[3:]
	}
	return host
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

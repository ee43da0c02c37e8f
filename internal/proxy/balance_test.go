package proxy

import (
	"testing"
	"time"
)

func TestPoolHostRoundTrip(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:15001", "[::1]:15001", "payments.svc:443", "p1.example:80", "localhost:1"} {
		e := newEndpoint(addr)
		seen := map[string]bool{}
		for range 2 * poolConns {
			h := e.poolHost(false)
			seen[h] = true
			if got := poolAddr(h); got != addr {
				t.Errorf("poolAddr(%q) = %q, want %q", h, got, addr)
			}
		}
		if addr[0] != '[' && len(seen) != poolConns {
			t.Errorf("%s: %d pool hosts, want %d", addr, len(seen), poolConns)
		}
		if got := e.poolHost(true); got != addr {
			t.Errorf("upgrade host %q, want %q", got, addr)
		}
	}
}

func TestPick(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	a, b, c := newEndpoint("a:1"), newEndpoint("b:1"), newEndpoint("c:1")
	set := &endpointSet{eps: []*endpoint{a, b, c}}
	a.inflight.Store(10)
	b.eject(now, time.Minute)
	for range 50 {
		got := set.pick(now, nil)
		if got == b {
			t.Fatal("picked an ejected endpoint while a healthy one exists")
		}
	}
	// Least loaded wins among the two sampled: c (0) over a (10) whenever
	// both are drawn; a is only picked when paired with the ejected b.
	counts := map[*endpoint]int{}
	for range 300 {
		counts[set.pick(now, nil)]++
	}
	if counts[c] <= counts[a] {
		t.Errorf("less loaded endpoint picked %d times, busier %d", counts[c], counts[a])
	}
	if got := set.pick(now, c); got != a {
		t.Errorf("skip c: got %v, want a", got.addr)
	}
	// Ejection expires on the injected clock.
	if got := (&endpointSet{eps: []*endpoint{b}}).pick(now.Add(2*time.Minute), nil); got != b {
		t.Error("ejection did not expire")
	}
	// All ejected: panic mode still returns one (not the skipped one).
	a.eject(now, time.Minute)
	c.eject(now, time.Minute)
	if got := set.pick(now, a); got == nil || got == a {
		t.Errorf("panic mode: got %v", got)
	}
	if (&endpointSet{}).pick(now, nil) != nil || (*endpointSet)(nil).pick(now, nil) != nil {
		t.Error("empty set returned an endpoint")
	}
}

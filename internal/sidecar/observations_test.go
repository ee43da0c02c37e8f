package sidecar

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/proxy"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func audited(src, method, path string, at time.Time) *proxy.Event {
	return &proxy.Event{Time: at, Direction: "inbound", Source: src, Destination: "orders", Port: 8083,
		Method: method, Path: path, Decision: "allow", Mode: "audit"}
}

func sortedObs(r *apiv1.WorkloadReport) []string {
	var out []string
	for _, o := range r.GetObservations() {
		out = append(out, fmt.Sprintf("%s %d %s %s n=%d %d..%d", o.Source, o.Port, o.Method, o.Path, o.Count,
			time.Unix(0, o.FirstSeen).Sub(t0)/time.Second, time.Unix(0, o.LastSeen).Sub(t0)/time.Second))
	}
	sort.Strings(out)
	return out
}

// TestObservationsAggregate: calls of one shape are one entry with their
// count and first and last time; only inbound audit-mode calls count; the
// entries go out once per observeInterval.
func TestObservationsAggregate(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	o := newObservations(clk.now)
	const a, b = "spiffe://shop.local/ns/default/sa/a", "spiffe://shop.local/ns/default/sa/b"
	for i := range 5 {
		o.observe(audited(a, "GET", "/orders/1", t0.Add(time.Duration(i)*time.Second)))
	}
	o.observe(audited(b, "POST", "/orders", t0.Add(3*time.Second)))
	enforced := audited(a, "GET", "/x", t0)
	enforced.Mode = "enforce"
	outbound := audited(a, "GET", "/y", t0)
	outbound.Direction = "outbound"
	denied := audited(a, "GET", "/z", t0)
	denied.Decision = "deny"
	would := audited(a, "DELETE", "/orders/1", t0.Add(7*time.Second))
	would.Decision = "audit-deny"
	for _, e := range []*proxy.Event{enforced, outbound, denied, would} {
		o.observe(e)
	}

	var early apiv1.WorkloadReport
	clk.t = t0.Add(observeInterval - time.Second)
	o.drain(&early)
	if len(early.Observations) != 0 {
		t.Fatalf("sent before observeInterval: %v", sortedObs(&early))
	}
	clk.t = t0.Add(observeInterval)
	var r apiv1.WorkloadReport
	o.drain(&r)
	want := []string{
		a + " 8083 DELETE /orders/1 n=1 7..7",
		a + " 8083 GET /orders/1 n=5 0..4",
		b + " 8083 POST /orders n=1 3..3",
	}
	if diff := cmp.Diff(want, sortedObs(&r)); diff != "" {
		t.Errorf("observations (-want +got):\n%s", diff)
	}
	var again apiv1.WorkloadReport
	clk.t = clk.t.Add(observeInterval)
	o.drain(&again)
	if len(again.Observations) != 0 || again.ObservationsDropped != 0 {
		t.Errorf("drained twice: %v, %d dropped", sortedObs(&again), again.ObservationsDropped)
	}
}

// TestObservationsBounds: the number of distinct entries and the length of
// the caller's strings are bounded, and every call they turn away is
// counted; known entries still count when the map is full; half a map is
// sent without waiting.
func TestObservationsBounds(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	o := newObservations(clk.now)
	const src = "spiffe://shop.local/ns/default/sa/a"
	half := 0
	for i := range maxObservedKeys + 10 {
		if o.observe(audited(src, "GET", fmt.Sprintf("/p/%d", i), t0)) {
			half++
		}
	}
	o.observe(audited(src, "GET", "/p/0", t0)) // known: counted, not dropped
	o.observe(audited(src, "GET", "/"+strings.Repeat("a", maxObservedPath), t0))
	o.observe(audited(src, strings.Repeat("M", maxObservedMethod+1), "/p/0", t0))
	if half != 1 {
		t.Errorf("half-full signalled %d times, want 1", half)
	}
	var r apiv1.WorkloadReport
	o.drain(&r) // no time has passed: the map is (more than) half full
	if len(r.Observations) != maxObservedKeys {
		t.Fatalf("%d entries, want the bound %d", len(r.Observations), maxObservedKeys)
	}
	if r.ObservationsDropped != 10+2 {
		t.Errorf("dropped = %d, want 12 (10 beyond the bound, 2 too long)", r.ObservationsDropped)
	}
	for _, ob := range r.Observations {
		if ob.Path == "/p/0" && ob.Count != 2 {
			t.Errorf("/p/0 count = %d, want 2", ob.Count)
		}
	}
}

// TestObservationsRequeue: a report that was never sent is merged back, so
// counts survive a broken stream, within the bound.
func TestObservationsRequeue(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	o := newObservations(clk.now)
	const src = "spiffe://shop.local/ns/default/sa/a"
	o.observe(audited(src, "GET", "/a", t0.Add(10*time.Second)))
	o.requeue(&apiv1.WorkloadReport{ObservationsDropped: 3, Observations: []*apiv1.Observation{
		{Source: src, Port: 8083, Method: "GET", Path: "/a", Count: 4, FirstSeen: t0.UnixNano(), LastSeen: t0.Add(2 * time.Second).UnixNano()},
		{Source: src, Port: 8083, Method: "GET", Path: "/b", Count: 1, FirstSeen: t0.UnixNano(), LastSeen: t0.UnixNano()},
	}})
	clk.t = t0.Add(observeInterval)
	var r apiv1.WorkloadReport
	o.drain(&r)
	want := []string{src + " 8083 GET /a n=5 0..10", src + " 8083 GET /b n=1 0..0"}
	if diff := cmp.Diff(want, sortedObs(&r)); diff != "" {
		t.Errorf("observations (-want +got):\n%s", diff)
	}
	if r.ObservationsDropped != 3 {
		t.Errorf("dropped = %d, want 3", r.ObservationsDropped)
	}

	full := newObservations(clk.now)
	for i := range maxObservedKeys {
		full.observe(audited(src, "GET", fmt.Sprintf("/p/%d", i), t0))
	}
	full.requeue(&apiv1.WorkloadReport{Observations: []*apiv1.Observation{{Source: src, Path: "/new", Count: 7}}})
	var rf apiv1.WorkloadReport
	full.drain(&rf)
	if len(rf.Observations) != maxObservedKeys || rf.ObservationsDropped != 7 {
		t.Errorf("requeue into a full map: %d entries, %d dropped; want %d and 7", len(rf.Observations), rf.ObservationsDropped, maxObservedKeys)
	}
}

// TestObservationsPrintable: a caller's bytes that are not UTF-8 (had the
// proxy not escaped them) are escaped, so the report still marshals and
// the Watch stream carrying it does not end.
func TestObservationsPrintable(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t0}
	o := newObservations(clk.now)
	o.observe(audited("spiffe://shop.local/ns/default/sa/a\xff", "G\x00ET", "/a\xff\xfe/\x1b[2J", t0))
	clk.t = t0.Add(observeInterval)
	var r apiv1.WorkloadReport
	o.drain(&r)
	if len(r.Observations) != 1 {
		t.Fatalf("%d observations, want 1", len(r.Observations))
	}
	ob := r.Observations[0]
	for _, s := range []string{ob.Source, ob.Method, ob.Path} {
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\x1b") {
			t.Errorf("%q is not printable", s)
		}
	}
	if _, err := proto.Marshal(&r); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
}

package control

import (
	"context"
	"strings"
	"testing"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// TestObservationsStored: a sidecar's observations reach the trail as
// request.observed events with their counts, a flood of more than the
// deny rate limit is still stored (its own bound), a control character in a path does
// not break the stream, and what the bounds drop is one "dropped" event.
func TestObservationsStored(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	w := e.watchAs(t, e.clientAs(t, "web"))
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	rep := &apiv1.WorkloadReport{ObservationsDropped: 5}
	for i := range maxObsPerReport + 3 {
		rep.Observations = append(rep.Observations, &apiv1.Observation{Source: "spiffe://example.org/ns/default/sa/caller",
			Port: 8080, Method: "GET", Path: "/p/" + strings.Repeat("x", i%200) + "\x1b[2J", Count: 2, FirstSeen: now, LastSeen: now})
	}
	if err := w.Send(rep); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var observed, dropped int
		var total int64
		for _, ev := range evs {
			if ev.Action != "request.observed" {
				continue
			}
			if ev.Outcome == "dropped" {
				dropped++
				if !strings.HasPrefix(ev.Detail, "11 observed calls not recorded") {
					t.Errorf("dropped detail %q, want 11 (5 by the sidecar, 3 entries x 2 by the bound)", ev.Detail)
				}
				continue
			}
			observed++
			total += ev.GetDeny().GetCount()
			if strings.Contains(ev.GetDeny().GetPath(), "\x1b") {
				t.Fatalf("path %q not printable", ev.GetDeny().GetPath())
			}
			if ev.Subject != "web" || ev.GetDeny().GetTarget() == "" || ev.GetDeny().GetFirstSeen() != now {
				t.Fatalf("observed event %v", ev)
			}
		}
		if observed == maxObsPerReport && dropped == 1 {
			if total != 2*maxObsPerReport {
				t.Errorf("total count %d, want %d", total, 2*maxObsPerReport)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d observed and %d dropped events, want %d and 1", observed, dropped, maxObsPerReport)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

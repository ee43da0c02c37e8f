package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// TestAuditViewDeny: `audit -o json` prints a reported deny's fields
// under "deny" as they came (a path with spaces, quotes and "rule=" in it
// is one string), and no "deny" key on other events or on denies stored
// before the fields existed.
func TestAuditViewDeny(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 1, 12, 0, 0, 500, time.UTC)
	const path = `/say "hi" (twice)/rule=allow-all port 1/\xff`
	for _, tc := range []struct {
		name string
		in   *apiv1.AuditEvent
		want string
	}{{
		name: "deny",
		in: &apiv1.AuditEvent{Time: at.UnixNano(), Action: "request.deny", Outcome: "denied", Actor: "spiffe://shop.local/ns/default/sa/frontend", Subject: "payments",
			Detail: "GET " + path + " port 8084 rule=frontend-reads policy=payments mode=enforce version=v1",
			Deny: &apiv1.AuditDeny{Method: "GET", Path: path, Port: 8084, Policy: "payments", Rule: "frontend-reads", Mode: "enforce",
				PolicyVersion: "v1", GitCommit: "c1", Reported: at.Add(-time.Second).UnixNano()}},
		want: `{"time":"2026-11-01T12:00:00.0000005Z","action":"request.deny","outcome":"denied","actor":"spiffe://shop.local/ns/default/sa/frontend","subject":"payments",` +
			`"detail":"GET /say \"hi\" (twice)/rule=allow-all port 1/\\xff port 8084 rule=frontend-reads policy=payments mode=enforce version=v1",` +
			`"deny":{"method":"GET","path":"/say \"hi\" (twice)/rule=allow-all port 1/\\xff","port":8084,"policy":"payments","rule":"frontend-reads","mode":"enforce",` +
			`"policy_version":"v1","git_commit":"c1","reported":"2026-11-01T11:59:59.0000005Z"}}` + "\n",
	}, {
		name: "connection, no reported time",
		in: &apiv1.AuditEvent{Time: at.UnixNano(), Action: "request.deny", Outcome: "denied", Actor: "a", Subject: "db", Detail: "connection port 5432",
			Deny: &apiv1.AuditDeny{Port: 5432, Rule: "default-deny", Mode: "enforce"}},
		want: `{"time":"2026-11-01T12:00:00.0000005Z","action":"request.deny","outcome":"denied","actor":"a","subject":"db","detail":"connection port 5432",` +
			`"deny":{"method":"","path":"","port":5432,"policy":"","rule":"default-deny","mode":"enforce","policy_version":"","git_commit":"","reported":null}}` + "\n",
	}, {
		name: "text only",
		in:   &apiv1.AuditEvent{Time: at.UnixNano(), Action: "request.deny", Outcome: "denied", Actor: "a", Subject: "db", Detail: "connection port 5432 rule=default-deny"},
		want: `{"time":"2026-11-01T12:00:00.0000005Z","action":"request.deny","outcome":"denied","actor":"a","subject":"db","detail":"connection port 5432 rule=default-deny"}` + "\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := writeRecord(&b, formatJSON, newAuditView(tc.in)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("audit -o json record (-want +got):\n%s", diff)
			}
		})
	}
}

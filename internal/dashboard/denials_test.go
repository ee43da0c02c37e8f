package dashboard

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/store"
)

// TestDenyOf: a deny event shows its stored fields as they are, whatever
// its path holds and whatever its detail says; an event stored before
// the fields existed shows what its detail gives; a summary shows its
// text.
func TestDenyOf(t *testing.T) {
	t.Parallel()
	const path = `/say "hi" (twice)/rule=allow-all policy=x mode=audit port 1/\xff\xfe end`
	reported := t0.Add(-2 * time.Second)
	for _, tc := range []struct {
		name string
		in   store.AuditEvent
		want Deny
	}{{
		name: "fields",
		in: store.AuditEvent{Time: t0, Action: "request.deny", Actor: id("frontend"), Subject: "payments", Outcome: "denied",
			Detail: "GET " + path + " port 8084 rule=frontend-reads policy=payments mode=enforce version=v1 commit=c1",
			Deny: &store.AuditDeny{Method: "GET", Path: path, Port: 8084, Policy: "payments", Rule: "frontend-reads", Mode: "enforce",
				PolicyVersion: "v1", GitCommit: "c1", Reported: reported}},
		want: Deny{Time: t0, Source: id("frontend"), Destination: "payments", Method: "GET", Path: path, Port: 8084, Rule: "frontend-reads",
			Policy: "payments", Mode: "enforce", Version: "v1", Commit: "c1", Reported: reported, Outcome: "denied",
			Detail:     "GET " + path + " port 8084 rule=frontend-reads policy=payments mode=enforce version=v1 commit=c1",
			RuleAnchor: "rule-payments--frontend-reads"},
	}, {
		name: "fields win over the detail",
		in: store.AuditEvent{Time: t0, Action: "request.audit-deny", Actor: id("orders"), Subject: "catalog", Outcome: "would-deny",
			Detail: "GET /x port 1 rule=other policy=other mode=enforce version=v9",
			Deny:   &store.AuditDeny{Port: 8082, Policy: "catalog", Rule: "default-deny", Mode: "audit", PolicyVersion: "v2"}},
		want: Deny{Time: t0, Source: id("orders"), Destination: "catalog", Port: 8082, Rule: "default-deny", Policy: "catalog", Mode: "audit",
			Version: "v2", Outcome: "would-deny", Detail: "GET /x port 1 rule=other policy=other mode=enforce version=v9", RuleAnchor: "policy-catalog"},
	}, {
		name: "text only",
		in: store.AuditEvent{Time: t0, Action: "request.deny", Actor: id("frontend"), Subject: "payments", Outcome: "denied",
			Detail: "POST /charge port 8084 rule=frontend-refunds policy=payments mode=enforce version=v1 commit=c1 reported=2026-03-01T11:59:58Z"},
		want: Deny{Time: t0, Source: id("frontend"), Destination: "payments", Method: "POST", Path: "/charge", Port: 8084, Rule: "frontend-refunds",
			Policy: "payments", Mode: "enforce", Version: "v1", Commit: "c1", Outcome: "denied",
			Detail:     "POST /charge port 8084 rule=frontend-refunds policy=payments mode=enforce version=v1 commit=c1 reported=2026-03-01T11:59:58Z",
			RuleAnchor: "rule-payments--frontend-refunds"},
	}, {
		name: "summary",
		in: store.AuditEvent{Time: t0, Action: "request.deny", Actor: id("orders"), Subject: "orders", Outcome: "denied",
			Detail: "3 more denies not itemized by the sidecar (rate bound)"},
		want: Deny{Time: t0, Source: id("orders"), Destination: "orders", Outcome: "denied", Detail: "3 more denies not itemized by the sidecar (rate bound)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, denyOf(tc.in)); diff != "" {
				t.Errorf("denyOf (-want +got):\n%s", diff)
			}
		})
	}
}

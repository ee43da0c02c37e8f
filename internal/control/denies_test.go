package control

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/dashboard"
	"meshward.dev/meshward/internal/store"
)

// TestDenyFieldsReachTheDashboard: denies a sidecar reports on its real
// Watch stream reach the bolt store, the admin Audit stream and the
// dashboard's /api/denials as fields, every one intact, though the path
// holds what a text format trips on (spaces, quotes, parentheses,
// "rule=" and " port " inside it, invalid UTF-8 as the sidecar escapes
// it). The detail text stays what `meshward audit` printed before. An
// event stored before the fields existed (text only) still shows, parsed
// from its detail, and a summary of dropped denies shows as its text.
func TestDenyFieldsReachTheDashboard(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	const commit = "4e94245aa1b2"
	pv, err := e.admin.ApplyPolicy(ctx, &apiv1.ApplyPolicyRequest{Files: []*apiv1.PolicyFile{{Name: "web.yaml", Content: []byte("kind: AccessPolicy\n")}}, GitCommit: commit})
	if err != nil {
		t.Fatal(err)
	}
	version := pv.GetVersion()
	w := e.watchAs(t, e.clientAs(t, "web"))
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}

	const (
		caller = "spiffe://example.org/ns/default/sa/frontend"
		path   = `/say "hi" (twice)/rule=allow-all policy=x mode=audit version=v port 1/caf` + "\u00e9" + `/\xff\xfe end`
	)
	reported := time.Date(2026, 3, 1, 11, 59, 58, 123456789, time.UTC)
	start := time.Now()
	rep := &apiv1.WorkloadReport{Denies: []*apiv1.Deny{
		{Time: reported.UnixNano(), Source: caller, Destination: "web", Port: 8080, Method: "GET", Path: path,
			Policy: "web", Rule: "frontend-reads", Mode: "enforce", PolicyVersion: version},
		{Source: caller, Destination: "web", Port: 5432, Policy: "", Rule: "default-deny", Mode: "enforce", PolicyVersion: "sha256:older"},
		{Time: reported.UnixNano(), Source: caller, Destination: "web", Port: 8080, Method: "DELETE", Path: "/a b",
			Policy: "web", Rule: "default-deny", Mode: "audit", PolicyVersion: version},
	}}
	if err := w.Send(rep); err != nil {
		t.Fatal(err)
	}
	var stored []store.AuditEvent
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, err := e.store.Audit(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		stored = stored[:0]
		for _, ev := range all {
			if ev.Deny != nil {
				stored = append(stored, ev)
			}
		}
		if len(stored) == len(rep.Denies) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d denies stored", len(stored), len(rep.Denies))
		}
		time.Sleep(20 * time.Millisecond)
	}
	end := time.Now()

	// As the dashboard serves them, newest first (all three were received
	// at once: in the reverse of the report's order).
	want := []dashboard.Deny{
		{Source: caller, Destination: "web", Method: "DELETE", Path: "/a b", Port: 8080, Rule: "default-deny", Policy: "web", Mode: "audit",
			Version: version, Commit: commit, Reported: reported, Outcome: "would-deny",
			Detail: "DELETE /a b port 8080 rule=default-deny policy=web mode=audit version=" + version + " commit=" + commit + " reported=2026-03-01T11:59:58.123456789Z"},
		{Source: caller, Destination: "web", Port: 5432, Rule: "default-deny", Mode: "enforce", Version: "sha256:older", Outcome: "denied",
			Detail: "connection port 5432 rule=default-deny policy= mode=enforce version=sha256:older"},
		{Source: caller, Destination: "web", Method: "GET", Path: path, Port: 8080, Rule: "frontend-reads", Policy: "web", Mode: "enforce",
			Version: version, Commit: commit, Reported: reported, Outcome: "denied",
			Detail: "GET " + path + " port 8080 rule=frontend-reads policy=web mode=enforce version=" + version + " commit=" + commit + " reported=2026-03-01T11:59:58.123456789Z"},
	}
	got := denials(t, e)
	if diff := cmp.Diff(want, got.Denies, cmpopts.IgnoreFields(dashboard.Deny{}, "Time")); diff != "" {
		t.Errorf("dashboard denies (-want +got):\n%s", diff)
	}
	for _, d := range got.Denies {
		if d.Time.Before(start.Truncate(time.Second)) || d.Time.After(end) {
			t.Errorf("deny shown at %v, want the receive time (%v to %v)", d.Time, start, end)
		}
	}

	// The admin Audit stream (what `meshward audit` reads) carries the
	// same fields and the same text.
	events, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{Since: start.UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	var wire []*apiv1.AuditEvent
	for _, ev := range events {
		if ev.GetDeny() != nil {
			wire = append(wire, ev)
		}
	}
	wantWire := []*apiv1.AuditEvent{
		{Action: "request.deny", Actor: caller, Subject: "web", Outcome: "denied", Detail: want[2].Detail, Deny: &apiv1.AuditDeny{
			Method: "GET", Path: path, Port: 8080, Policy: "web", Rule: "frontend-reads", Mode: "enforce", PolicyVersion: version, GitCommit: commit, Reported: reported.UnixNano()}},
		{Action: "request.deny", Actor: caller, Subject: "web", Outcome: "denied", Detail: want[1].Detail, Deny: &apiv1.AuditDeny{
			Port: 5432, Rule: "default-deny", Mode: "enforce", PolicyVersion: "sha256:older"}},
		{Action: "request.audit-deny", Actor: caller, Subject: "web", Outcome: "would-deny", Detail: want[0].Detail, Deny: &apiv1.AuditDeny{
			Method: "DELETE", Path: "/a b", Port: 8080, Policy: "web", Rule: "default-deny", Mode: "audit", PolicyVersion: version, GitCommit: commit, Reported: reported.UnixNano()}},
	}
	if diff := cmp.Diff(wantWire, wire, protocmp.Transform(), protocmp.IgnoreFields(&apiv1.AuditEvent{}, "time")); diff != "" {
		t.Errorf("Audit stream denies (-want +got):\n%s", diff)
	}

	// An event stored before the fields existed has only its text; one
	// the sidecar did not itemize is a summary.
	old := time.Now()
	for _, ev := range []store.AuditEvent{
		{Time: old, Action: "request.deny", Actor: caller, Subject: "web", Outcome: "denied",
			Detail: "POST /charge port 8084 rule=frontend-refunds policy=payments mode=enforce version=sha256:bb commit=4e94245aa1b2"},
		{Time: old, Action: "request.deny", Actor: caller, Subject: "web", Outcome: "denied", Detail: "3 more denies not itemized by the sidecar (rate bound)"},
	} {
		if err := e.store.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	wantOld := []dashboard.Deny{
		{Source: caller, Destination: "web", Outcome: "denied", Detail: "3 more denies not itemized by the sidecar (rate bound)"},
		{Source: caller, Destination: "web", Method: "POST", Path: "/charge", Port: 8084, Rule: "frontend-refunds", Policy: "payments", Mode: "enforce",
			Version: "sha256:bb", Commit: "4e94245aa1b2", Outcome: "denied",
			Detail: "POST /charge port 8084 rule=frontend-refunds policy=payments mode=enforce version=sha256:bb commit=4e94245aa1b2"},
	}
	got = denials(t, e)
	if len(got.Denies) < len(wantOld) {
		t.Fatalf("%d denies shown, want at least %d", len(got.Denies), len(wantOld))
	}
	if diff := cmp.Diff(wantOld, got.Denies[:len(wantOld)], cmpopts.IgnoreFields(dashboard.Deny{}, "Time")); diff != "" {
		t.Errorf("text-only denies on the dashboard (-want +got):\n%s", diff)
	}
}

// denials is the dashboard's /api/denials, the dashboard reading e's
// control plane in-process as `meshward up` wires it.
func denials(t *testing.T, e *testEnv) dashboard.Denials {
	t.Helper()
	h, err := dashboard.New(dashboard.Config{Source: e.srv})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9900/api/denials", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/api/denials: %d %s", rec.Code, rec.Body)
	}
	var v dashboard.Denials
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("/api/denials: %v\n%s", err, rec.Body)
	}
	if v.Error != "" {
		t.Fatalf("/api/denials: %s", v.Error)
	}
	return v
}

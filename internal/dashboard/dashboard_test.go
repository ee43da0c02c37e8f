package dashboard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/store"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a source: no error")
	}
	if _, err := New(Config{Source: &fakeSource{}, Refresh: -time.Second}); err == nil {
		t.Fatal("New with a negative refresh: no error")
	}
	h, err := New(Config{Source: &fakeSource{}})
	if err != nil || h == nil {
		t.Fatalf("New = %v, %v", h, err)
	}
}

// TestPages: every page renders whole, with its navigation, live region,
// and the assets it links to are served from the binary.
func TestPages(t *testing.T) {
	s := newShop(t)
	s.src.policy = demoPolicy(t)
	d, _ := newTest(t, s.src, demoMesh(t))
	for _, p := range pages {
		t.Run(p.Name, func(t *testing.T) {
			code, hdr, body := get(t, d, p.Href)
			if code != http.StatusOK {
				t.Fatalf("GET %s = %d: %s", p.Href, code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			for _, want := range []string{
				"<title>" + p.Title + " · meshward</title>",
				`<html lang="en">`,
				`aria-current="page">` + p.Title + `</a>`,
				`data-fragment="/fragment/` + p.Name + `"`,
				`<nav aria-label="Dashboard pages">`,
				`href="/static/dashboard.css"`,
				`src="/static/dashboard.js"`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("page %s has no %s", p.Href, want)
				}
			}
			// No reference to anything outside the dashboard.
			if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(body); m != "" {
				t.Errorf("page %s references an external resource: %s", p.Href, m)
			}
			code, _, frag := get(t, d, "/fragment/"+p.Name)
			if code != http.StatusOK || strings.Contains(frag, "<html") {
				t.Errorf("fragment %s = %d, whole page: %v", p.Name, code, strings.Contains(frag, "<html"))
			}
			code, hdr, _ = get(t, d, "/api/"+p.Name)
			if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("api %s = %d %s", p.Name, code, hdr.Get("Content-Type"))
			}
		})
	}
	for path, ct := range map[string]string{"/static/dashboard.css": "text/css; charset=utf-8", "/static/dashboard.js": "text/javascript; charset=utf-8"} {
		code, hdr, body := get(t, d, path)
		if code != http.StatusOK || hdr.Get("Content-Type") != ct || len(body) < 100 {
			t.Errorf("GET %s = %d %q (%d bytes)", path, code, hdr.Get("Content-Type"), len(body))
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s references an external URL", path)
		}
	}
	if code, _, _ := get(t, d, "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

// TestReadOnly: no route accepts a method that could change state.
func TestReadOnly(t *testing.T) {
	d, _ := newTest(t, &fakeSource{policy: demoPolicy(t)}, nil)
	paths := []string{"/", "/static/dashboard.js"}
	for _, p := range pages {
		paths = append(paths, p.Href, "/fragment/"+p.Name, "/api/"+p.Name)
	}
	for _, path := range paths {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			req := httptest.NewRequest(m, "http://127.0.0.1:9900"+path, strings.NewReader("x=1"))
			rec := httptest.NewRecorder()
			d.ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s = %d, want 405", m, path, rec.Code)
			}
		}
	}
}

// TestHostCheck: a page on another site that rebinds its name to the
// dashboard's address gets nothing; IP addresses and localhost work.
func TestHostCheck(t *testing.T) {
	c := &clock{t: t0}
	d, err := newDashboard(Config{Source: &fakeSource{}, Now: c.Now, AllowedHosts: []string{"mesh.example.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:9900", http.StatusOK},
		{"[::1]:9900", http.StatusOK},
		{"localhost:9900", http.StatusOK},
		{"LOCALHOST.", http.StatusOK},
		{"10.1.2.3", http.StatusOK},
		{"mesh.example.internal:9900", http.StatusOK},
		{"attacker.example:9900", http.StatusMisdirectedRequest},
		{"127.0.0.1.attacker.example", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		t.Run(tc.host, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/identities", nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			d.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("Host %q = %d, want %d", tc.host, rec.Code, tc.want)
			}
			if tc.want != http.StatusOK && strings.Contains(rec.Body.String(), td) {
				t.Fatal("refused response leaks mesh state")
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	d, _ := newTest(t, &fakeSource{}, nil)
	_, hdr, _ := get(t, d, "/")
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := hdr.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

// TestEscaping: what callers control (request paths in denies, names)
// is text on the page, never markup.
func TestEscaping(t *testing.T) {
	evil := `<script>alert(1)</script>`
	src := &fakeSource{
		events: []store.AuditEvent{{
			Time: t0.Add(-time.Minute), Action: "request.deny", Actor: id("frontend"), Subject: id("payments"),
			Detail: "GET /" + evil + " port 8084 rule=default-deny policy=payments mode=enforce version=sha256:1", Outcome: "denied",
			Deny: &store.AuditDeny{Method: "GET", Path: "/" + evil, Port: 8084, Policy: "payments", Rule: "default-deny", Mode: "enforce", PolicyVersion: "sha256:1"},
		}, {
			Time: t0.Add(-time.Minute), Action: "token.create", Actor: "spiffe://shop.local/x" + evil, Subject: evil, Detail: evil, Outcome: "ok",
		}},
		status: &apiv1.MeshStatusResponse{TrustDomain: td, Workloads: []*apiv1.WorkloadStatus{{SpiffeId: id("a") + evil, Service: evil, PolicyError: evil}}},
	}
	d, _ := newTest(t, src, nil)
	for _, p := range []string{"/denials", "/identities", "/fragment/denials"} {
		_, _, body := get(t, d, p)
		if strings.Contains(body, "<script>alert") {
			t.Errorf("%s contains unescaped markup", p)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s does not show the escaped text", p)
		}
	}
}

func TestIdentities(t *testing.T) {
	wl := func(svc string, notAfter time.Duration) *apiv1.WorkloadStatus {
		w := workload(svc, "127.0.0.1:1")
		w.SvidNotAfter = t0.Add(notAfter).Unix()
		return w
	}
	expired := wl("legacy", -2*time.Minute)
	none := wl("starting", 0)
	none.SvidNotAfter, none.SvidSerial = 0, ""
	rejected := wl("orders", 40*time.Minute)
	rejected.PolicyError = "payments.yaml:9: spec.rules[0].from: unknown service"
	src := &fakeSource{status: &apiv1.MeshStatusResponse{
		TrustDomain: td,
		Workloads:   []*apiv1.WorkloadStatus{wl("frontend", 30*time.Minute), wl("payments", 5*time.Minute), expired, none, rejected},
		Banned:      []string{id("legacy")},
		Ca: &apiv1.CAStatusResponse{
			TrustDomain: td,
			Certificates: []*apiv1.Certificate{
				{Role: "intermediate", State: "active", Subject: "CN=meshward intermediate shop.local,O=meshward", Serial: "1b2c", Fingerprint: "ab12cd34ef56ab12cd34ef56ab12cd34ef56", NotBefore: t0.Add(-24 * time.Hour).Unix(), NotAfter: t0.Add(6 * 24 * time.Hour).Unix()},
				{Role: "root", State: "retiring", Subject: "CN=meshward root old", Serial: "0a", Fingerprint: "00ff", NotBefore: t0.Add(-365 * 24 * time.Hour).Unix(), NotAfter: t0.Add(20 * 24 * time.Hour).Unix()},
				{Role: "root", State: "active", Subject: "CN=meshward root shop.local", Serial: "0b", Fingerprint: "11ee", NotBefore: t0.Add(-24 * time.Hour).Unix(), NotAfter: t0.Add(364 * 24 * time.Hour).Unix()},
			},
			Phase: "retire", PhaseDetail: "old root leaves the bundle after every workload renewed",
			Lagging:                  []*apiv1.Lagging{{SpiffeId: id("legacy"), Reason: "certificate from the old root"}},
			NextIntermediateRotation: t0.Add(2*24*time.Hour + 3*time.Hour).Unix(),
		},
	}}
	d, _ := newTest(t, src, nil)
	_, _, js := get(t, d, "/api/identities")
	golden(t, "identities.json", js)
	_, _, html := get(t, d, "/fragment/identities")
	golden(t, "identities.html", html)
	v := buildIdentities(src.Status(), t0)
	states := map[string]string{}
	for _, w := range v.Workloads {
		states[w.Service] = w.State
	}
	want := map[string]string{"frontend": "valid", "payments": "expiring", "legacy": "expired", "starting": "none", "orders": "valid"}
	for k, w := range want {
		if states[k] != w {
			t.Errorf("%s: state %q, want %q", k, states[k], w)
		}
	}
	if v.CA[0].Role != "root" || v.CA[0].State != "active" || v.CA[len(v.CA)-1].Role != "intermediate" {
		t.Errorf("chain order: %+v", v.CA)
	}
	if !strings.Contains(html, `data-unix="`+strconv.FormatInt(t0.Add(30*time.Minute).Unix(), 10)+`">in 30m 0s</time>`) {
		t.Error("no countdown for the frontend's certificate")
	}
}

// TestDenials: the latest denies and other events in the window. The
// connection and the POST deny carry fields (AuditEvent.Deny, as the
// control plane stores them now); the DELETE one is text only, as stored
// before the fields existed. The goldens are the same for both.
func TestDenials(t *testing.T) {
	src := &fakeSource{events: []store.AuditEvent{
		{Time: t0.Add(-25 * time.Hour), Action: "request.deny", Actor: id("old"), Subject: id("payments"), Detail: "GET /too-old port 8084 rule=default-deny policy=payments mode=enforce version=sha256:aa", Outcome: "denied"},
		{Time: t0.Add(-2 * time.Hour), Action: "policy.apply", Actor: "spiffe://shop.local/meshward/admin", Subject: "sha256:aa", Detail: "revision 1", Outcome: "ok"},
		{Time: t0.Add(-90 * time.Minute), Action: "identity.ban", Actor: "spiffe://shop.local/meshward/admin", Subject: id("legacy"), Detail: "compromised", Outcome: "ok"},
		{Time: t0.Add(-10 * time.Minute), Action: "request.audit-deny", Actor: id("orders"), Subject: id("catalog"), Detail: "DELETE /products/1 port 8082 rule=default-deny policy=catalog mode=audit version=sha256:bb", Outcome: "would-deny"},
		{Time: t0.Add(-5 * time.Minute), Action: "request.deny", Actor: id("frontend"), Subject: id("db"), Detail: "connection port 5432 rule=default-deny policy= mode=enforce version=sha256:bb", Outcome: "denied",
			Deny: &store.AuditDeny{Port: 5432, Rule: "default-deny", Mode: "enforce", PolicyVersion: "sha256:bb"}},
		{Time: t0.Add(-3 * time.Minute), Action: "cert.refuse", Actor: "bootstrap", Subject: "", Detail: "token used", Outcome: "refused"},
		{Time: t0.Add(-time.Minute), Action: "request.deny", Actor: id("frontend"), Subject: id("payments"), Detail: "POST /charge port 8084 rule=frontend-refunds policy=payments mode=enforce version=sha256:bb commit=4e94245aa1b2", Outcome: "denied",
			Deny: &store.AuditDeny{Method: "POST", Path: "/charge", Port: 8084, Policy: "payments", Rule: "frontend-refunds", Mode: "enforce", PolicyVersion: "sha256:bb", GitCommit: "4e94245aa1b2"}},
		{Time: t0.Add(-30 * time.Second), Action: "request.deny", Actor: id("orders"), Subject: id("orders"), Detail: "3 more denies not itemized (rate bound)", Outcome: "denied"},
	}}
	d, _ := newTest(t, src, nil)
	_, _, js := get(t, d, "/api/denials")
	golden(t, "denials.json", js)
	_, _, html := get(t, d, "/fragment/denials")
	golden(t, "denials.html", html)
	if !src.since.Equal(t0.Add(-auditWindow)) {
		t.Errorf("read the audit trail since %v, want %v", src.since, t0.Add(-auditWindow))
	}
	v := d.denials(t.Context())
	if v.Total != 4 || len(v.Denies) != 4 || v.Denies[0].Detail != "3 more denies not itemized (rate bound)" {
		t.Fatalf("denies = %d %+v", v.Total, v.Denies)
	}
	if got := v.Denies[1]; got.Method != "POST" || got.Path != "/charge" || got.Port != 8084 || got.Rule != "frontend-refunds" || got.Commit != "4e94245aa1b2" || got.RuleAnchor != "rule-payments--frontend-refunds" {
		t.Errorf("parsed deny = %+v", got)
	}
	if got := v.Denies[2]; got.Method != "" || got.Port != 5432 {
		t.Errorf("connection deny = %+v", got)
	}
	if got := v.Denies[3]; got.Method != "DELETE" || got.Path != "/products/1" || got.Port != 8082 || got.Mode != "audit" || got.Version != "sha256:bb" {
		t.Errorf("deny stored as text only (before AuditEvent.Deny) = %+v", got)
	}
	if len(v.Events) != 3 || v.Events[0].Action != "cert.refuse" {
		t.Errorf("events = %+v", v.Events)
	}
	if !strings.Contains(html, `<a href="/policies#rule-payments--frontend-refunds">payments/frontend-refunds</a>`) {
		t.Error("deny does not link to its rule")
	}

	src.auditErr = errors.New("store closed")
	_, _, html = get(t, d, "/fragment/denials")
	if !strings.Contains(html, "audit trail unavailable: store closed") {
		t.Error("a failing audit trail is not reported")
	}
}

// TestDenialsBounded: a flood of denies shows the latest few and counts
// the rest.
func TestDenialsBounded(t *testing.T) {
	var events []store.AuditEvent
	for i := range 500 {
		events = append(events, store.AuditEvent{Time: t0.Add(time.Duration(i-600) * time.Second), Action: "request.deny", Actor: id("a"), Subject: id("b"), Detail: "GET /x port 1 rule=default-deny policy=b mode=enforce version=v", Outcome: "denied"})
	}
	d, _ := newTest(t, &fakeSource{events: events}, nil)
	v := d.denials(t.Context())
	if v.Total != 500 || len(v.Denies) != maxDenies || !v.Denies[0].Time.Equal(t0.Add(-101*time.Second)) {
		t.Fatalf("total %d, listed %d, first %v", v.Total, len(v.Denies), v.Denies[0].Time)
	}
}

func TestPolicies(t *testing.T) {
	src := &fakeSource{policy: demoPolicy(t)}
	d, _ := newTest(t, src, demoMesh(t))
	_, _, js := get(t, d, "/api/policies")
	golden(t, "policies.json", js)
	_, _, html := get(t, d, "/fragment/policies")
	golden(t, "policies.html", html)

	v := d.policyView(t.Context()).view
	cell := func(src, dst string) Cell {
		for i, s := range v.Sources {
			for j, tg := range v.Targets {
				if s.Label == src && tg.Label == dst {
					return v.Matrix[i][j]
				}
			}
		}
		t.Fatalf("no cell %s -> %s", src, dst)
		return Cell{}
	}
	if c := cell("frontend", "catalog"); !c.Allowed || len(c.Rules) != 1 || c.Rules[0].Name != "catalog/frontend-browse" {
		t.Errorf("frontend -> catalog = %+v, want allowed by catalog/frontend-browse", c)
	}
	if c := cell("frontend", "payments"); c.Allowed || len(c.Rules) != 0 {
		t.Errorf("frontend -> payments = %+v, want denied", c)
	}
	if c := cell("orders", "payments"); !c.Allowed {
		t.Errorf("orders -> payments = %+v, want allowed", c)
	}
	// Every link of the matrix leads to an element of the page.
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(` id="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		ids[m[1]] = true
	}
	links := regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(links) < 4 {
		t.Fatalf("only %d rule links", len(links))
	}
	for _, m := range links {
		if !ids[m[1]] {
			t.Errorf("link #%s leads nowhere", m[1])
		}
	}
	// The rule's line is its own, not the policy's.
	for _, p := range v.Policies {
		for _, r := range p.Rules {
			if r.Line <= p.Line {
				t.Errorf("%s/%s: line %d, policy at line %d", p.Name, r.Name, r.Line, p.Line)
			}
		}
	}

	// A new revision is compiled again; the same one is not.
	before := d.policyView(t.Context())
	if d.policyView(t.Context()) != before {
		t.Error("same policy compiled again")
	}
	src.mu.Lock()
	src.policy = &apiv1.Policy{Revision: 4, Version: "sha256:none"}
	src.mu.Unlock()
	if v := d.policyView(t.Context()).view; len(v.Grants) != 0 || v.Revision != 4 {
		t.Errorf("after an empty policy: %d grants, revision %d", len(v.Grants), v.Revision)
	}
}

func TestPoliciesWildcardsAndAudit(t *testing.T) {
	files := []*apiv1.PolicyFile{{Name: "p.yaml", Content: []byte(`apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: reports, namespace: default}
spec:
  target: reports
  rules:
    - name: ops-read
      from: [{namespace: ops}]
      to: [{methods: [GET]}]
    - name: everyone-health
      from: [{namespace: "*"}]
      to: [{paths: [/healthz]}]
---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: legacy, namespace: default}
spec:
  target: legacy
  mode: audit
  rules: []
`)}}
	d, _ := newTest(t, &fakeSource{policy: &apiv1.Policy{Revision: 1, Version: "v1", Files: files}}, nil)
	st := d.policyView(t.Context())
	if st.view.Error != "" {
		t.Fatal(st.view.Error)
	}
	if !st.allows("spiffe://shop.local/ns/ops/sa/grafana", id("reports")) {
		t.Error("namespace grant does not cover ops/grafana")
	}
	if !st.allows(id("frontend"), id("reports")) {
		t.Error("namespace * grant does not cover frontend")
	}
	if st.allows(id("frontend"), id("legacy")) {
		t.Error("audit mode counted as allowed by policy")
	}
	var labels []string
	for _, s := range st.view.Sources {
		labels = append(labels, s.Label)
	}
	if want := "namespace ops"; !slices.Contains(labels, want) {
		t.Errorf("sources %v lack %q", labels, want)
	}
	_, _, html := get(t, d, "/fragment/policies")
	if !strings.Contains(html, `<span class="badge warn">audit</span>`) || !strings.Contains(html, `href="#policy-legacy"`) {
		t.Error("audit-mode cell not shown as audit, linking to its policy")
	}
}

func TestFindings(t *testing.T) {
	weak := &apiv1.Policy{Revision: 2, Version: "v2", Files: []*apiv1.PolicyFile{{Name: "meshconfig.yaml", Content: []byte(`apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: shop.local
  defaultAction: allow
`)}}}
	src := &fakeSource{policy: demoPolicy(t)}
	d, clk := newTest(t, src, demoMesh(t))
	v := d.findings(t.Context())
	if len(v.Inputs) != 2 || v.Error != "" {
		t.Fatalf("inputs %v, error %q", v.Inputs, v.Error)
	}
	for _, f := range v.Findings {
		if f.Severity >= 3 {
			t.Errorf("the demo has a %s finding: %+v", f.Severity, f)
		}
	}
	src.mu.Lock()
	src.policy = weak
	src.mu.Unlock()
	v = d.findings(t.Context())
	if !slices.ContainsFunc(v.Findings, func(f scan.Finding) bool { return f.Rule == "MW-MESHWARD-003" }) || v.Summary.High == 0 {
		t.Fatalf("default allow not found: %+v", v.Findings)
	}
	_, _, html := get(t, d, "/fragment/findings")
	if !strings.Contains(html, "MW-MESHWARD-003") || !strings.Contains(html, "<details><summary>Remediation</summary>") {
		t.Error("findings page lacks the finding or its remediation")
	}
	// Cached until the policy changes or a minute passes.
	first := v.ScannedAt
	clk.Add(30 * time.Second)
	if !d.findings(t.Context()).ScannedAt.Equal(first) {
		t.Error("scanned again within the minute")
	}
	clk.Add(31 * time.Second)
	if d.findings(t.Context()).ScannedAt.Equal(first) {
		t.Error("not scanned again after a minute")
	}
}

func TestFindingsWithoutMesh(t *testing.T) {
	d, _ := newTest(t, &fakeSource{}, nil)
	v := d.findings(t.Context())
	if len(v.Findings) != 0 || len(v.Inputs) != 0 {
		t.Fatalf("findings without inputs: %+v", v)
	}
	_, _, html := get(t, d, "/fragment/findings")
	if !strings.Contains(html, "nothing (no mesh file or policy)") {
		t.Error("no word that nothing was scanned")
	}
}

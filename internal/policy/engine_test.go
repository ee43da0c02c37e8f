package policy

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

var fixedNow = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

// compileText compiles YAML documents given inline.
func compileText(t testing.TB, docs ...string) *Engine {
	t.Helper()
	var files []File
	for i, d := range docs {
		files = append(files, File{Name: filepath.Join("inline", string(rune('a'+i))+".yaml"), Data: []byte(d)})
	}
	e, err := Compile(files, Options{Now: fixedClock})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

// loadDir is what the CLI and the control plane do with a directory:
// ReadDir, then Compile.
func loadDir(dir string, opts Options) (*Engine, error) {
	files, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return Compile(files, opts)
}

func demoEngine(t testing.TB) *Engine {
	t.Helper()
	m, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := loadDir("../../examples/demo/policies", Options{Mesh: m, Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func id(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	v, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func httpReq(t testing.TB, from, svc string, port int, method, path string, hdr ...string) *Request {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	return &Request{
		Source:      id(t, from),
		Destination: Destination{Service: svc, Namespace: "default", Port: port},
		HTTP:        &HTTPRequest{Method: method, Path: path, Headers: h},
	}
}

func TestDefaultDeny(t *testing.T) {
	t.Parallel()
	req := httpReq(t, "spiffe://shop.local/ns/default/sa/frontend", "payments", 8084, "POST", "/charge")
	empty, err := Compile(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := compileText(t, `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: catalog}
spec:
  target: catalog
  rules:
    - name: everyone
      from: [{namespace: "*"}]
`)
	want := Decision{Rule: RuleDefaultDeny, Mode: ModeEnforce}
	for name, e := range map[string]*Engine{"nil": nil, "empty": empty, "policy for another service": other} {
		if got := e.Decide(req); got != want {
			t.Errorf("%s engine: Decide = %+v, want %+v", name, got, want)
		}
		l4 := *req
		l4.HTTP = nil
		if got := e.Decide(&l4); got.Allow {
			t.Errorf("%s engine: L4 allowed", name)
		}
	}
	if got := other.Decide(nil); got.Allow {
		t.Error("nil request allowed")
	}
}

func TestDecideDemo(t *testing.T) {
	t.Parallel()
	e := demoEngine(t)
	const td = "spiffe://shop.local/ns/default/sa/"
	tests := []struct {
		name string
		req  *Request
		want Decision
	}{
		{"frontend browses", httpReq(t, td+"frontend", "catalog", 8082, "GET", "/products"),
			Decision{Allow: true, Policy: "catalog", Rule: "frontend-browse", Mode: "enforce"}},
		{"frontend product", httpReq(t, td+"frontend", "catalog", 8082, "GET", "/products/7"),
			Decision{Allow: true, Policy: "catalog", Rule: "frontend-browse", Mode: "enforce"}},
		{"orders price check", httpReq(t, td+"orders", "catalog", 8082, "GET", "/products/7"),
			Decision{Allow: true, Policy: "catalog", Rule: "orders-price-check", Mode: "enforce"}},
		{"orders lists", httpReq(t, td+"orders", "catalog", 8082, "GET", "/products"),
			Decision{Policy: "catalog", Rule: "default-deny", Mode: "enforce"}},
		{"orders charges", httpReq(t, td+"orders", "payments", 8084, "POST", "/charge"),
			Decision{Allow: true, Policy: "payments", Rule: "orders-charge", Mode: "enforce"}},
		{"frontend charges", httpReq(t, td+"frontend", "payments", 8084, "POST", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"catalog charges", httpReq(t, td+"catalog", "payments", 8084, "POST", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"lower-case method", httpReq(t, td+"orders", "payments", 8084, "post", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"wrong port", httpReq(t, td+"orders", "payments", 8085, "POST", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"other trust domain", httpReq(t, "spiffe://evil.example/ns/default/sa/orders", "payments", 8084, "POST", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"other namespace", httpReq(t, "spiffe://shop.local/ns/ops/sa/orders", "payments", 8084, "POST", "/charge"),
			Decision{Policy: "payments", Rule: "default-deny", Mode: "enforce"}},
		{"unknown service", httpReq(t, td+"orders", "ledger", 8084, "POST", "/charge"),
			Decision{Rule: "default-deny", Mode: "enforce"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, e.Decide(tc.req)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

const matchPolicy = `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api, namespace: default}
spec:
  target: api
  mode: %MODE%
  rules:
    - name: public
      from: [{namespace: "*"}]
      to: [{methods: [GET], paths: ["/public/*"]}]
    - name: charge
      from: [{service: web}, {identity: "spiffe://meshward.local/ns/ops/sa/admin"}]
      to: [{ports: [8080], methods: [POST], paths: ["/charge"], headers: {X-Tenant: acme}}]
    - name: ops-tcp
      from: [{namespace: ops}]
      to: [{ports: [9090]}]
`

func matchEngine(t testing.TB, mode string) *Engine {
	return compileText(t, strings.ReplaceAll(matchPolicy, "%MODE%", mode))
}

func TestDecideMatching(t *testing.T) {
	t.Parallel()
	e := matchEngine(t, "enforce")
	const td = "spiffe://meshward.local/ns/"
	l4 := func(from string, port int) *Request {
		return &Request{Source: id(t, from), Destination: Destination{Service: "api", Port: port}}
	}
	tests := []struct {
		name string
		req  *Request
		rule string // "" = denied
	}{
		{"any workload public", httpReq(t, td+"x/sa/y", "api", 1, "GET", "/public/a/b"), "public"},
		{"public prefix needs the slash", httpReq(t, td+"x/sa/y", "api", 1, "GET", "/public"), ""},
		{"public needs GET", httpReq(t, td+"x/sa/y", "api", 1, "HEAD", "/public/a"), ""},
		{"foreign trust domain is not any workload", httpReq(t, "spiffe://other.td/ns/x/sa/y", "api", 1, "GET", "/public/a"), ""},
		{"non-workload path is not any workload", httpReq(t, "spiffe://meshward.local/node/1", "api", 1, "GET", "/public/a"), ""},
		{"charge with tenant", httpReq(t, td+"default/sa/web", "api", 8080, "POST", "/charge", "x-tenant", "acme"), "charge"},
		{"charge identity source", httpReq(t, td+"ops/sa/admin", "api", 8080, "POST", "/charge", "X-TENANT", "acme"), "charge"},
		{"charge tenant value exact", httpReq(t, td+"default/sa/web", "api", 8080, "POST", "/charge", "x-tenant", "ACME"), ""},
		{"charge tenant missing", httpReq(t, td+"default/sa/web", "api", 8080, "POST", "/charge"), ""},
		{"charge tenant repeated", httpReq(t, td+"default/sa/web", "api", 8080, "POST", "/charge", "x-tenant", "acme", "x-tenant", "evil"), ""},
		{"charge wrong port", httpReq(t, td+"default/sa/web", "api", 8081, "POST", "/charge", "x-tenant", "acme"), ""},
		{"web in other namespace", httpReq(t, td+"prod/sa/web", "api", 8080, "POST", "/charge", "x-tenant", "acme"), ""},
		{"ops tcp L4", l4(td+"ops/sa/job", 9090), "ops-tcp"},
		{"ops tcp over http", httpReq(t, td+"ops/sa/job", "api", 9090, "DELETE", "/x"), "ops-tcp"},
		{"ops other port", l4(td+"ops/sa/job", 9091), ""},
		{"ops prefix is exact namespace", l4(td+"opsx/sa/job", 9090), ""},
		{"L7 rule never matches L4", l4(td+"default/sa/web", 8080), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := e.Decide(tc.req)
			if tc.rule == "" {
				if got.Allow || got.Rule != RuleDefaultDeny || got.Policy != "api" {
					t.Errorf("Decide = %+v, want deny by default-deny of api", got)
				}
				return
			}
			if !got.Allow || got.Rule != tc.rule {
				t.Errorf("Decide = %+v, want allow by %s", got, tc.rule)
			}
		})
	}
}

func TestAuditMode(t *testing.T) {
	t.Parallel()
	e := matchEngine(t, "audit")
	denied := httpReq(t, "spiffe://meshward.local/ns/x/sa/y", "api", 8080, "POST", "/charge")
	want := Decision{Allow: true, Policy: "api", Rule: RuleDefaultDeny, Mode: ModeAudit, WouldDeny: true}
	if diff := cmp.Diff(want, e.Decide(denied)); diff != "" {
		t.Errorf("audit deny (-want +got):\n%s", diff)
	}
	allowed := httpReq(t, "spiffe://meshward.local/ns/x/sa/y", "api", 8080, "GET", "/public/x")
	want = Decision{Allow: true, Policy: "api", Rule: "public", Mode: ModeAudit}
	if diff := cmp.Diff(want, e.Decide(allowed)); diff != "" {
		t.Errorf("audit allow (-want +got):\n%s", diff)
	}
}

func TestDefaultAllowIsExplicit(t *testing.T) {
	t.Parallel()
	e := compileText(t, "apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {defaultAction: allow}\n", strings.ReplaceAll(matchPolicy, "%MODE%", "enforce"))
	got := e.Decide(httpReq(t, "spiffe://meshward.local/ns/x/sa/y", "unprotected", 1, "GET", "/"))
	if !got.Allow || got.Rule != RuleDefaultAllow {
		t.Errorf("unprotected service under defaultAction allow: %+v", got)
	}
	// A service with a policy is still default-deny.
	got = e.Decide(httpReq(t, "spiffe://meshward.local/ns/x/sa/y", "api", 1, "POST", "/charge"))
	if got.Allow {
		t.Errorf("protected service allowed: %+v", got)
	}
}

// TestPathBypassCorpus proves every known path trick in
// testdata/pathbypass.txt is refused: rejected by NormalizePath (400) or
// denied by a policy that allows only GET /public/* and POST /charge.
func TestPathBypassCorpus(t *testing.T) {
	t.Parallel()
	e := compileText(t, `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api}
spec:
  target: api
  rules:
    - name: public
      from: [{namespace: "*"}]
      to: [{methods: [GET], paths: ["/public/*"]}]
    - name: charge
      from: [{namespace: "*"}]
      to: [{methods: [POST], paths: ["/charge"]}]
`)
	rejected, denied := 0, 0
	for _, raw := range bypassCorpus(t) {
		p, err := NormalizePath(raw)
		if err != nil {
			rejected++
			continue
		}
		for _, m := range []string{"GET", "POST"} {
			d := e.Decide(httpReq(t, "spiffe://meshward.local/ns/default/sa/attacker", "api", 8080, m, p))
			if d.Allow {
				t.Errorf("%s %q (normalized %q) allowed by rule %s", m, raw, p, d.Rule)
			}
		}
		denied++
	}
	t.Logf("corpus: %d rejected with 400, %d normalized and denied", rejected, denied)
}

func TestConditions(t *testing.T) {
	t.Parallel()
	pol := func(when string) string {
		return `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api}
spec:
  target: api
  rules:
    - name: cond
      from: [{namespace: "*"}]
      when: '` + when + `'
`
	}
	req := httpReq(t, "spiffe://meshward.local/ns/default/sa/web", "api", 8080, "GET", "/x", "X-Env", "prod", "X-Multi", "a", "X-Multi", "b")
	tests := []struct {
		when string
		want bool
	}{
		{`request.headers["x-env"] == "prod"`, true},
		{`request.headers["x-env"] == "dev"`, false},
		{`request.headers["missing"] == "prod"`, false}, // error: fail closed
		{`request.headers["X-ENV"] == "prod"`, true},    // names are case-insensitive
		{`"x-env" in request.headers && !("x-other" in request.headers)`, true},
		{`request.headers.exists(k, k == "x-env")`, true}, // iteration sees lower-case names
		{`size(request.headers) == 2`, true},
		{`request.headers == {"x-env": "prod", "x-multi": "a, b"}`, true},
		{`request.headers["x-multi"] == "a, b"`, true}, // repeated values joined
		{`source.service == "web" && source.namespace == "default" && source.trustDomain == "meshward.local"`, true},
		{`source.identity.startsWith("spiffe://meshward.local/")`, true},
		{`destination.port == 8080 && destination.service == "api" && destination.namespace == "default"`, true},
		{`request.method == "GET" && request.path == "/x"`, true},
		{`time.getHours("UTC") == 10`, true},
		{`time > timestamp("2027-01-01T00:00:00Z")`, false},
		{`1 / (destination.port - 8080) == 1`, false}, // division by zero: fail closed
		// Runs into the cost limit: fail closed, quickly.
		{`[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, a+b+c+d > 0))))`, false},
	}
	for _, tc := range tests {
		t.Run(tc.when, func(t *testing.T) {
			t.Parallel()
			e := compileText(t, pol(tc.when))
			if got := e.Decide(req).Allow; got != tc.want {
				t.Errorf("allow = %v, want %v", got, tc.want)
			}
		})
	}
	// L4: request is empty, so a header condition is false.
	e := compileText(t, pol(`request.headers["x-env"] == "prod"`))
	l4 := *req
	l4.HTTP = nil
	if e.Decide(&l4).Allow {
		t.Error("header condition matched an L4 request")
	}
}

// TestConditionBudget: one request spends at most celRequestBudget across
// the conditions it meets. A caller allowed by several conditional rules
// sends a 60 KB header each condition reads; once the budget is spent the
// later rules are not evaluated and the request is denied (fail closed),
// where without the budget the last rule would allow it.
func TestConditionBudget(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: api}\nspec:\n  target: api\n  rules:\n")
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "    - name: scan-%d\n      from: [{namespace: \"*\"}]\n      when: 'request.headers[\"x-big\"].contains(\"needle-%d\")'\n", i, i)
	}
	b.WriteString("    - name: cheap\n      from: [{namespace: \"*\"}]\n      when: 'source.namespace == \"default\"'\n")
	e := compileText(t, b.String())
	small := httpReq(t, "spiffe://meshward.local/ns/default/sa/web", "api", 8080, "GET", "/x", "X-Big", "small")
	if d := e.Decide(small); !d.Allow || d.Rule != "cheap" {
		t.Fatalf("small header: %+v, want allowed by rule cheap", d)
	}
	big := httpReq(t, "spiffe://meshward.local/ns/default/sa/web", "api", 8080, "GET", "/x", "X-Big", strings.Repeat("a", 60<<10))
	if d := e.Decide(big); d.Allow {
		t.Fatalf("60 KB header through eight scanning conditions: %+v, want denied once the request's CEL budget is spent", d)
	}
}

// TestCompileErrors compiles each bad policy directory under
// testdata/TestCompileErrors and compares the full error text with its
// golden file.
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/TestCompileErrors/*")
	if err != nil {
		t.Fatal(err)
	}
	mesh, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			_, err := loadDir(dir, Options{Mesh: mesh, Now: fixedClock})
			if err == nil {
				t.Fatal("compiled a bad policy set")
			}
			var list config.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("not a config.ErrorList: %v", err)
			}
			checkGolden(t, dir+".golden", err.Error()+"\n")
		})
	}
	if n == 0 {
		t.Fatal("no test directories")
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	a := matchEngine(t, "enforce")
	b := compileText(t, "# a comment changes nothing\n"+strings.ReplaceAll(matchPolicy, "%MODE%", "enforce"))
	c := matchEngine(t, "audit")
	if !strings.HasPrefix(a.Version(), "sha256:") || len(a.Version()) != 71 {
		t.Fatalf("Version = %q", a.Version())
	}
	if a.Version() != b.Version() {
		t.Error("formatting changed the version")
	}
	if a.Version() == c.Version() {
		t.Error("a mode change did not change the version")
	}
}

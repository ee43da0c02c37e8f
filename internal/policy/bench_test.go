package policy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// benchFiles generates n AccessPolicies of r L7 rules each (ports, methods,
// exact and prefix paths, a header; with a CEL condition when cel is set),
// as one file per 100 policies.
func benchFiles(n, r int, cel bool) []File {
	var files []File
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: svc-%d}\nspec:\n  target: svc-%d\n  rules:\n", i, i)
		for j := 0; j < r; j++ {
			fmt.Fprintf(&b, "    - name: rule-%d\n      from: [{service: caller-%d}, {identity: \"spiffe://meshward.local/ns/ops/sa/caller-%d\"}]\n", j, j, j)
			fmt.Fprintf(&b, "      to:\n        - ports: [8080]\n          methods: [GET, POST]\n          paths: [\"/api/v1/resource-%d\", \"/api/v1/resource-%d/*\"]\n          headers: {x-tenant: tenant-%d}\n", j, j, j)
			if cel {
				fmt.Fprintf(&b, "      when: 'request.headers[\"x-env\"] == \"prod\" && source.namespace == \"default\"'\n")
			}
		}
		if (i+1)%100 == 0 || i == n-1 {
			files = append(files, File{Name: fmt.Sprintf("gen/policies-%04d.yaml", i), Data: []byte(b.String())})
			b.Reset()
		}
	}
	return files
}

func benchRequest(b testing.TB, caller int) *Request {
	return &Request{
		Source:      spiffeid.RequireFromString(fmt.Sprintf("spiffe://meshward.local/ns/default/sa/caller-%d", caller)),
		Destination: Destination{Service: "svc-500", Namespace: "default", Port: 8080},
		HTTP: &HTTPRequest{Method: "POST", Path: fmt.Sprintf("/api/v1/resource-%d/items/42", caller),
			Headers: http.Header{"X-Tenant": {fmt.Sprintf("tenant-%d", caller)}, "X-Env": {"prod"}, "Accept": {"*/*"}}},
	}
}

func benchEngine(b testing.TB, cel bool) *Engine {
	b.Helper()
	e, err := Compile(benchFiles(1000, 10, cel), Options{Now: fixedClock})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkDecide decides against 1,000 policies x 10 rules. "allow-last"
// matches the 10th rule of the target (nine rules scanned first); "deny"
// matches none.
func BenchmarkDecide(b *testing.B) {
	for _, cel := range []bool{false, true} {
		e := benchEngine(b, cel)
		for _, tc := range []struct {
			name   string
			caller int
			allow  bool
		}{{"allow-first", 0, true}, {"allow-last", 9, true}, {"deny", 42, false}} {
			name := "L7/" + tc.name
			if cel {
				name = "L7+CEL/" + tc.name
			}
			b.Run(name, func(b *testing.B) {
				req := benchRequest(b, tc.caller)
				if got := e.Decide(req).Allow; got != tc.allow {
					b.Fatalf("allow = %v, want %v", got, tc.allow)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e.Decide(req)
				}
			})
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	files := benchFiles(1000, 10, false)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(files, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, p := range []string{"/api/v1/resource-9/items/42", "/api//v1/./resource-9/%69tems/../items/42"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := NormalizePath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecideNoAlloc holds the zero-allocation promise of the no-CEL path.
func TestDecideNoAlloc(t *testing.T) {
	e := benchEngine(t, false)
	for _, caller := range []int{0, 9, 42} {
		req := benchRequest(t, caller)
		if allocs := testing.AllocsPerRun(200, func() { e.Decide(req) }); allocs != 0 {
			t.Errorf("caller-%d: Decide allocates %v times, want 0", caller, allocs)
		}
	}
}

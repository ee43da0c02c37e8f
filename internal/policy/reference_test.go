package policy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

// referenceDecide is a slow, obviously-correct evaluator that reads the
// parsed spec directly (no compiled structures, no precomputed IDs), for a
// differential check of Engine.Decide. Conditions are not modeled: the
// differential sets have none.
func referenceDecide(s *Set, r *Request) Decision {
	ns := r.Destination.Namespace
	if ns == "" {
		ns = "default"
	}
	var pol *AccessPolicy
	for _, p := range s.Policies {
		if p.Namespace == ns && p.Spec.Target == r.Destination.Service {
			pol = p
		}
	}
	if pol == nil {
		if s.Config.DefaultAction == "allow" {
			return Decision{Allow: true, Rule: "default-allow", Mode: "enforce"}
		}
		return Decision{Rule: "default-deny", Mode: "enforce"}
	}
	for _, rule := range pol.Spec.Rules {
		if refSourceOK(s.Config.TrustDomain, pol.Namespace, rule.From, r.Source.String()) && refToOK(rule.To, r) {
			return Decision{Allow: true, Policy: pol.Name, Rule: rule.Name, Mode: pol.Spec.Mode}
		}
	}
	if pol.Spec.Mode == "audit" {
		return Decision{Allow: true, Policy: pol.Name, Rule: "default-deny", Mode: "audit", WouldDeny: true}
	}
	return Decision{Policy: pol.Name, Rule: "default-deny", Mode: "enforce"}
}

func refSourceOK(td, policyNS string, from []Source, caller string) bool {
	for _, src := range from {
		switch {
		case src.Service != "":
			if caller == "spiffe://"+td+"/ns/"+policyNS+"/sa/"+src.Service {
				return true
			}
		case src.Identity != "":
			if caller == src.Identity {
				return true
			}
		default:
			rest, ok := strings.CutPrefix(caller, "spiffe://"+td+"/")
			parts := strings.Split(rest, "/")
			if ok && len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" && parts[1] != "" && parts[3] != "" &&
				(src.Namespace == "*" || src.Namespace == parts[1]) {
				return true
			}
		}
	}
	return false
}

func refToOK(to []Operation, r *Request) bool {
	if len(to) == 0 {
		return true
	}
	for _, op := range to {
		portOK := len(op.Ports) == 0
		for _, p := range op.Ports {
			portOK = portOK || p == r.Destination.Port
		}
		if !portOK {
			continue
		}
		if r.HTTP == nil {
			if len(op.Methods) == 0 && len(op.Paths) == 0 && len(op.Headers) == 0 {
				return true
			}
			continue
		}
		methodOK := len(op.Methods) == 0
		for _, m := range op.Methods {
			methodOK = methodOK || m == r.HTTP.Method
		}
		pathOK := len(op.Paths) == 0
		for _, p := range op.Paths {
			if strings.HasSuffix(p, "/*") {
				pathOK = pathOK || strings.HasPrefix(r.HTTP.Path, strings.TrimSuffix(p, "*"))
			} else {
				pathOK = pathOK || p == r.HTTP.Path
			}
		}
		headersOK := true
		for k, v := range op.Headers {
			vals := r.HTTP.Headers.Values(k)
			headersOK = headersOK && len(vals) == 1 && vals[0] == v
		}
		if methodOK && pathOK && headersOK {
			return true
		}
	}
	return false
}

// Pools the differential generator picks from.
var (
	diffSources = []string{`{service: web}`, `{service: api}`, `{identity: "spiffe://meshward.local/ns/ops/sa/job"}`,
		`{identity: "spiffe://other.td/ns/default/sa/web"}`, `{namespace: ops}`, `{namespace: "*"}`, `{namespace: default}`}
	diffOps = []string{`{}`, `{ports: [8080]}`, `{ports: [9090, 8080]}`, `{methods: [GET]}`, `{methods: [POST, PUT], paths: ["/a"]}`,
		`{paths: ["/a/*"]}`, `{paths: ["/*"]}`, `{paths: ["/a", "/a/b/*"], headers: {x-t: "1"}}`, `{ports: [8080], headers: {X-T: "2"}}`}
	diffCallers = []string{"spiffe://meshward.local/ns/default/sa/web", "spiffe://meshward.local/ns/default/sa/api",
		"spiffe://meshward.local/ns/ops/sa/job", "spiffe://meshward.local/ns/ops/sa/web", "spiffe://other.td/ns/default/sa/web",
		"spiffe://meshward.local/node/7", "spiffe://meshward.local/ns/default/sa/web/x"}
	diffPaths   = []string{"/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b"}
	diffMethods = []string{"GET", "POST", "PUT", "get"}
)

// genSet builds a policy set (two targets, a few rules) from fuzz bytes.
func genSet(data []byte) string {
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		v := int(data[0])
		data = data[1:]
		return v
	}
	var b strings.Builder
	if next()%4 == 0 {
		b.WriteString("apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultAction: allow}\n---\n")
	}
	for _, target := range []string{"svc", "other"} {
		if next()%5 == 0 {
			continue // no policy for this target
		}
		mode := "enforce"
		if next()%3 == 0 {
			mode = "audit"
		}
		fmt.Fprintf(&b, "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: p-%s}\nspec:\n  target: %s\n  mode: %s\n  rules:\n", target, target, mode)
		nrules := next() % 4
		for i := 0; i < nrules; i++ {
			fmt.Fprintf(&b, "    - name: r%d\n      from: [", i)
			for j, n := 0, 1+next()%2; j < n; j++ {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(diffSources[next()%len(diffSources)])
			}
			b.WriteString("]\n")
			if n := next() % 3; n > 0 {
				b.WriteString("      to: [")
				for j := 0; j < n; j++ {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(diffOps[next()%len(diffOps)])
				}
				b.WriteString("]\n")
			}
		}
		b.WriteString("---\n")
	}
	return b.String()
}

func diffRequests() []*Request {
	var out []*Request
	for _, c := range diffCallers {
		src := spiffeid.RequireFromString(c)
		for _, svc := range []string{"svc", "other", "none"} {
			for _, port := range []int{8080, 9090} {
				out = append(out, &Request{Source: src, Destination: Destination{Service: svc, Port: port}})
				for _, m := range diffMethods {
					for _, p := range diffPaths {
						for _, h := range []http.Header{{}, {"X-T": {"1"}}, {"X-T": {"2"}}, {"X-T": {"1", "1"}}} {
							out = append(out, &Request{Source: src, Destination: Destination{Service: svc, Port: port},
								HTTP: &HTTPRequest{Method: m, Path: p, Headers: h}})
						}
					}
				}
			}
		}
	}
	return out
}

// FuzzDecideDifferential compares the compiled engine with referenceDecide
// on generated policy sets and every request of a fixed pool.
func FuzzDecideDifferential(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 3, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0, 2, 3, 2, 1, 6, 2, 7, 8, 3, 1, 1, 4, 2, 5, 6})
	f.Add([]byte{5, 9, 2, 3, 1, 2, 2, 1, 7, 2, 3, 0, 1, 2, 3, 2, 1, 8})
	reqs := diffRequests()
	f.Fuzz(func(t *testing.T, data []byte) {
		src := genSet(data)
		set, err := Parse([]File{{Name: "gen.yaml", Data: []byte(src)}}, Options{Now: fixedClock})
		if err != nil {
			t.Fatalf("generated set does not parse: %v\n%s", err, src)
		}
		e, err := set.Compile()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			got, want := e.Decide(r), referenceDecide(set, r)
			if got != want {
				t.Fatalf("request %+v %+v:\nengine    %+v\nreference %+v\npolicies:\n%s", r.Source, r.HTTP, got, want, src)
			}
		}
	})
}

// FuzzCompile feeds arbitrary bytes to the loader and compiler: no panics,
// errors always located in the file, and a set that compiles decides.
func FuzzCompile(f *testing.F) {
	for _, glob := range []string{"testdata/TestCompileErrors/*/*.yaml", "../../examples/demo/policies/*.yaml", "../../examples/demo/policies/tests/*.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(matchPolicy))
	req := &Request{Source: spiffeid.RequireFromString("spiffe://meshward.local/ns/default/sa/web"),
		Destination: Destination{Service: "api", Port: 8080}, HTTP: &HTTPRequest{Method: "GET", Path: "/public/x", Headers: http.Header{}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		files := []File{{Name: "fuzz.yaml", Data: data}}
		e, err := Compile(files, Options{Now: fixedClock})
		if err != nil {
			list := config.Errors(err)
			if len(list) == 0 {
				t.Fatalf("not a config error: %v", err)
			}
			for _, ce := range list {
				if ce.File != "fuzz.yaml" {
					t.Fatalf("error not located in the file: %v", ce)
				}
			}
			return
		}
		e.Decide(req)
		l4 := *req
		l4.HTTP = nil
		e.Decide(&l4)
		e2, err := Compile(files, Options{Now: fixedClock})
		if err != nil || e2.Version() != e.Version() {
			t.Fatalf("recompiling changed the result: %v", err)
		}
	})
}

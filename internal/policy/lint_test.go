package policy

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

func TestLint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  string
		mesh string
	}{
		{"demo", "../../examples/demo/policies", "../../examples/demo/mesh.yaml"},
		{"warnings", "testdata/TestLint/warnings", "../../examples/demo/mesh.yaml"},
		{"tcp", "testdata/TestLint/tcp", "../../examples/tcp-echo/mesh.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mesh, err := config.LoadMesh(tc.mesh)
			if err != nil {
				t.Fatal(err)
			}
			files, err := ReadDir(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			set, err := Parse(files, Options{Mesh: mesh, Now: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, w := range Lint(set) {
				b.WriteString(w.String() + "\n")
			}
			if tc.name == "demo" && b.Len() > 0 {
				t.Errorf("demo policies are not lint clean:\n%s", b.String())
			}
			checkGolden(t, filepath.Join("testdata", "TestLint", tc.name+".golden"), b.String())
		})
	}
}

func TestRuleCovers(t *testing.T) {
	t.Parallel()
	td := mustTD(t, "meshward.local")
	p := &AccessPolicy{Namespace: "default"}
	web := Source{Service: "web"}
	webID := Source{Identity: "spiffe://meshward.local/ns/default/sa/web"}
	tests := []struct {
		name string
		a, b Rule
		want bool
	}{
		{"same", Rule{From: []Source{web}}, Rule{From: []Source{web}}, true},
		{"service covers its identity", Rule{From: []Source{web}}, Rule{From: []Source{webID}}, true},
		{"namespace covers service", Rule{From: []Source{{Namespace: "default"}}}, Rule{From: []Source{web}}, true},
		{"other namespace does not", Rule{From: []Source{{Namespace: "ops"}}}, Rule{From: []Source{web}}, false},
		{"any covers namespace", Rule{From: []Source{{Namespace: "*"}}}, Rule{From: []Source{{Namespace: "ops"}}}, true},
		{"no to covers to", Rule{From: []Source{web}}, Rule{From: []Source{web}, To: []Operation{{Methods: []string{"GET"}}}}, true},
		{"to does not cover no to", Rule{From: []Source{web}, To: []Operation{{Methods: []string{"GET"}}}}, Rule{From: []Source{web}}, false},
		{"prefix covers exact", Rule{From: []Source{web}, To: []Operation{{Paths: []string{"/a/*"}}}},
			Rule{From: []Source{web}, To: []Operation{{Paths: []string{"/a/b"}, Methods: []string{"GET"}}}}, true},
		{"exact does not cover prefix", Rule{From: []Source{web}, To: []Operation{{Paths: []string{"/a/b"}}}},
			Rule{From: []Source{web}, To: []Operation{{Paths: []string{"/a/*"}}}}, false},
		{"header makes it narrower", Rule{From: []Source{web}, To: []Operation{{Headers: map[string]string{"x": "1"}}}},
			Rule{From: []Source{web}, To: []Operation{{Methods: []string{"GET"}}}}, false},
		{"condition blocks shadowing", Rule{From: []Source{web}, When: "true"}, Rule{From: []Source{web}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ruleCovers(nil, p, &tc.a, &tc.b, td); got != tc.want {
				t.Errorf("ruleCovers = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestShadowIndexMatchesPairwise checks the shadowing index against the
// pairwise definition on random rule sets drawn from small pools (so rules
// cover each other often): for every rule, the first earlier rule that
// covers it is the same either way.
func TestShadowIndexMatchesPairwise(t *testing.T) {
	t.Parallel()
	td := spiffeid.RequireTrustDomainFromString("meshward.local")
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(pool []string) string { return pool[rng.IntN(len(pool))] }
	sources := []Source{
		{Service: "web"}, {Service: "orders"}, {Namespace: "*"}, {Namespace: "default"}, {Namespace: "ops"},
		{Identity: "spiffe://meshward.local/ns/default/sa/web"}, {Identity: "spiffe://meshward.local/ns/ops/sa/cron"},
		{Identity: "spiffe://other.local/ns/default/sa/web"},
	}
	paths := []string{"/", "/*", "/api", "/api/*", "/api/v1", "/api/v1/*", "/a*", "/admin"}
	found := 0
	for iter := 0; iter < 300; iter++ {
		p := &AccessPolicy{Namespace: "default"}
		for i := 0; i < 12; i++ {
			r := Rule{Name: fmt.Sprint("r", i)}
			for n := 1 + rng.IntN(2); n > 0; n-- {
				r.From = append(r.From, sources[rng.IntN(len(sources))])
			}
			for n := rng.IntN(3); n > 0; n-- {
				var op Operation
				if rng.IntN(2) == 0 {
					op.Ports = []int{8080 + rng.IntN(2)}
				}
				if rng.IntN(2) == 0 {
					op.Methods = []string{pick([]string{"GET", "POST"})}
				}
				for m := rng.IntN(3); m > 0; m-- {
					op.Paths = append(op.Paths, pick(paths))
				}
				r.To = append(r.To, op)
			}
			if rng.IntN(8) == 0 {
				r.When = `source.namespace == "default"`
			}
			p.Spec.Rules = append(p.Spec.Rules, r)
		}
		x := newShadowIndex(nil, p, td)
		for i := range p.Spec.Rules {
			b := &p.Spec.Rules[i]
			want := -1
			for k := 0; k < i; k++ {
				if ruleCovers(nil, p, &p.Spec.Rules[k], b, td) {
					want = k
					break
				}
			}
			got := -1
			for _, k := range x.candidates(b, i) {
				if ruleCovers(nil, p, &p.Spec.Rules[k], b, td) {
					got = k
					break
				}
			}
			if got != want {
				t.Fatalf("iteration %d rule %d: index says shadowed by %d, pairwise by %d\n%+v", iter, i, got, want, p.Spec.Rules)
			}
			if want >= 0 {
				found++
			}
		}
	}
	if found < 100 {
		t.Fatalf("only %d shadowed rules in the random sets: the pools do not exercise the index", found)
	}
}

// BenchmarkLint lints one policy of 6,000 rules from 50 callers (the
// shadowing check was pairwise: 24 s).
func BenchmarkLint(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: api}\nspec:\n  target: api\n  rules:\n")
	for i := 0; i < 6000; i++ {
		fmt.Fprintf(&sb, "    - name: r-%d\n      from: [{service: caller-%d}]\n      to: [{ports: [8080], methods: [GET], paths: [\"/api/%d/*\"]}]\n", i, i%50, i)
	}
	set, err := Parse([]File{{Name: "p.yaml", Data: []byte(sb.String())}}, Options{Now: fixedClock})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Lint(set)
	}
}

package policy

import (
	"path/filepath"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/config"
)

func TestLint(t *testing.T) {
	t.Parallel()
	mesh, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
	}{
		{"demo", "../../examples/demo/policies"},
		{"warnings", "testdata/TestLint/warnings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
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
			if got := ruleCovers(p, &tc.a, &tc.b, td); got != tc.want {
				t.Errorf("ruleCovers = %v, want %v", got, tc.want)
			}
		})
	}
}

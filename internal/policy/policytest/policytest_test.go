package policytest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func load(t *testing.T, dir string, mesh *config.Mesh) (*policy.Set, *policy.Engine) {
	t.Helper()
	files, err := policy.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(files, policy.Options{Mesh: mesh, Now: func() time.Time { return time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := set.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return set, e
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", t.Name(), name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestRunDemo(t *testing.T) {
	mesh, err := config.LoadMesh("../../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(load(t, "../../../examples/demo/policies", mesh))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Passed < 20 || len(rep.Uncovered) != 0 {
		var b bytes.Buffer
		_ = rep.WriteText(&b, false)
		t.Fatalf("demo policy tests: %d passed, %d failed, %d uncovered\n%s", rep.Passed, rep.Failed, len(rep.Uncovered), b.String())
	}
}

func TestRunFailing(t *testing.T) {
	rep, err := Run(load(t, "testdata/failing", nil))
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Failed != 2 || rep.Passed != 2 {
		t.Errorf("passed %d failed %d, want 2 and 2", rep.Passed, rep.Failed)
	}
	if diff := cmp.Diff([]RuleRef{{Policy: "api", Rule: "never-tested", File: "testdata/failing/policy.yaml", Line: 11}}, rep.Uncovered); diff != "" {
		t.Errorf("uncovered (-want +got):\n%s", diff)
	}
	var text, js, junit bytes.Buffer
	if err := rep.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	golden(t, "text", text.String())
	golden(t, "json", js.String())
	golden(t, "junit", junit.String())
}

func TestRunInvalid(t *testing.T) {
	_, err := Run(load(t, "testdata/invalid", nil))
	if len(config.Errors(err)) == 0 {
		t.Fatalf("want config errors, got %v", err)
	}
	golden(t, "errors", err.Error()+"\n")
}

// TestRunServiceAccount: a case `from: orders` is the orders service, whose
// identity (with the mesh known) names its service account orders-sa.
func TestRunServiceAccount(t *testing.T) {
	mesh, err := config.ParseMesh("mesh.yaml", []byte(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  services:
    - {name: orders, port: 8080, serviceAccount: orders-sa}
    - {name: payments, port: 8084}
`))
	if err != nil {
		t.Fatal(err)
	}
	files := []policy.File{{Name: "p.yaml", Data: []byte(`apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: payments}
spec:
  target: payments
  rules:
    - name: orders-account
      from: [{identity: "spiffe://shop.local/ns/default/sa/orders-sa"}]
---
apiVersion: meshward.dev/v1
kind: PolicyTest
metadata: {name: t}
spec:
  cases:
    - {name: by-service, from: orders, to: payments, expect: allow}
    - {name: by-name-id, from: "spiffe://shop.local/ns/default/sa/orders", to: payments, expect: deny}
`)}}
	set, err := policy.Parse(files, policy.Options{Mesh: mesh})
	if err != nil {
		t.Fatal(err)
	}
	e, err := set.Compile()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(set, e)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !r.Pass {
			t.Errorf("case %s: got %s (%s), want %s", r.Case, r.Got, r.Message, r.Expect)
		}
	}
}

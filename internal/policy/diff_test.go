package policy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

func mustTD(t testing.TB, s string) spiffeid.TrustDomain {
	t.Helper()
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

func TestDiff(t *testing.T) {
	t.Parallel()
	mesh, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demoFiles, err := ReadDir("../../examples/demo/policies")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name, old, new string) []File {
		out := make([]File, len(demoFiles))
		copy(out, demoFiles)
		for i, f := range out {
			if f.Name == filepath.Join("../../examples/demo/policies", name) {
				if !strings.Contains(string(f.Data), old) {
					t.Fatalf("%s does not contain %q", name, old)
				}
				out[i].Data = []byte(strings.Replace(string(f.Data), old, new, 1))
			}
		}
		return out
	}
	compile := func(files []File) *Engine {
		e, err := Compile(files, Options{Mesh: mesh, Now: fixedClock})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	base := compile(demoFiles)
	tests := []struct {
		name  string
		files []File
		widen bool
	}{
		{"unchanged", demoFiles, false},
		{"frontend-charges", edit("payments.yaml", "from: [{service: orders}]", "from: [{service: orders}, {service: frontend}]"), true},
		{"any-namespace", edit("payments.yaml", "from: [{service: orders}]", `from: [{namespace: "*"}]`), true},
		{"refunds-prefix", edit("payments.yaml", `paths: ["/charge"]`, `paths: ["/charge", "/refunds/*"]`), true},
		{"narrower", edit("catalog.yaml", `paths: ["/products", "/products/*"]`, `paths: ["/products"]`), false},
		{"condition", edit("payments.yaml", "          paths: [\"/charge\"]\n", "          paths: [\"/charge\"]\n      when: 'request.headers[\"x-env\"] == \"prod\"'\n"), false},
		{"audit", edit("payments.yaml", "mode: enforce", "mode: audit"), true},
		{"rename-only", edit("payments.yaml", "name: orders-charge", "name: charge-by-orders"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			changes := Diff(base, compile(tc.files), mesh)
			var b strings.Builder
			widen := false
			for _, c := range changes {
				sign := "- "
				if c.Added {
					sign = "+ "
				}
				widen = widen || c.Widen
				b.WriteString(sign + c.Grant.String() + "\n")
			}
			if widen != tc.widen {
				t.Errorf("widen = %v, want %v", widen, tc.widen)
			}
			if (tc.name == "unchanged" || tc.name == "rename-only") && len(changes) != 0 {
				t.Errorf("changes for an access-neutral edit:\n%s", b.String())
			}
			checkGolden(t, filepath.Join("testdata", "TestDiff", tc.name+".golden"), b.String())
		})
	}
}

package meshward

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

// lintRule maps the linter's checks to the rules that report the same
// weakness in a scan.
var lintRule = map[string]string{
	policy.CheckWeakMTLS:     rulePermissive.ID,
	policy.CheckDefaultAllow: ruleDefaultAllow.ID,
	policy.CheckWeakPaths:    rulePathNorm.ID,
	policy.CheckAuditMode:    ruleAudit.ID,
}

// TestScannerAgreesWithLint: on a set that compiles, the scanner reports a
// weak MeshConfig or AccessPolicy setting exactly where the policy linter
// warns about it (same file, same line), since both ask policy's
// predicates. The scanner also reports values Compile rejects (mtls: off,
// pathNormalization: none, a rule without from, a 90-day TTL), which no
// valid set has.
func TestScannerAgreesWithLint(t *testing.T) {
	t.Parallel()
	const mc = "apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  trustDomain: shop.local\n"
	const ap = "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: payments, namespace: default}\nspec:\n  target: payments\n"
	const rules = "  rules:\n    - name: frontend\n      from: [{service: frontend}]\n      to: [{methods: [GET], paths: [/pay]}]\n"
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"secure", map[string]string{"mesh.yaml": mc + "  mtls: strict\n  defaultAction: deny\n  pathNormalization: strict\n", "pay.yaml": ap + rules}},
		{"defaults", map[string]string{"mesh.yaml": mc, "pay.yaml": ap + "  mode: enforce\n" + rules}},
		{"permissive mtls", map[string]string{"mesh.yaml": mc + "  mtls: permissive\n  permissiveUntil: \"2099-01-31T00:00:00Z\"\n"}},
		{"default allow", map[string]string{"mesh.yaml": mc + "  defaultAction: allow\n"}},
		{"permissive paths", map[string]string{"mesh.yaml": mc + "  pathNormalization: permissive\n"}},
		{"audit mode", map[string]string{"pay.yaml": ap + "  mode: audit\n" + rules}},
		{"all at once", map[string]string{
			"mesh.yaml": mc + "  mtls: permissive\n  permissiveUntil: \"2099-01-31T00:00:00Z\"\n  defaultAction: allow\n  pathNormalization: permissive\n",
			"pay.yaml":  ap + "  mode: audit\n" + rules,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			names := make([]string, 0, len(tc.files))
			for n := range tc.files {
				names = append(names, n)
			}
			sort.Strings(names)
			var files []policy.File
			var objs []*scan.Object
			for _, n := range names {
				files = append(files, policy.File{Name: n, Data: []byte(tc.files[n])})
				o, err := manifest.Decode(n, []byte(tc.files[n]))
				if err != nil {
					t.Fatalf("decode %s: %v", n, err)
				}
				objs = append(objs, o...)
			}
			set, err := policy.Parse(files, policy.Options{})
			if err != nil {
				t.Fatalf("the case must be a valid set: %v", err)
			}
			type at struct {
				Rule, File string
				Line       int
			}
			var want, got []at
			for _, w := range policy.Lint(set) {
				if id, ok := lintRule[w.Check]; ok {
					want = append(want, at{id, w.File, w.Line})
				}
			}
			for _, f := range check(scan.NewModel(objs, ruletest.Now)) {
				for _, id := range lintRule {
					if f.Rule == id {
						got = append(got, at{f.Rule, f.File, f.Line})
					}
				}
			}
			less := func(a, b at) bool {
				if a.File != b.File {
					return a.File < b.File
				}
				return a.Line < b.Line || a.Line == b.Line && a.Rule < b.Rule
			}
			if diff := cmp.Diff(want, got, cmpopts.SortSlices(less), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("lint (want) vs scan (got) (-want +got):\n%s", diff)
			}
		})
	}
}

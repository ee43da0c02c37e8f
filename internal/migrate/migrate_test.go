package migrate

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policytest"
	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
)

var timeZero = time.Time{}

var update = flag.Bool("update", false, "rewrite the golden files")

// importCases are the inputs of the golden tests: testdata cases and the
// repository's insecure examples.
var importCases = []struct {
	name  string
	paths []string
	td    string
	// none: the import allows no request a valid meshward caller can make.
	none bool
}{
	{name: "insecure-istio", paths: []string{"../../examples/insecure-istio"}},
	{name: "insecure-consul", paths: []string{"../../examples/insecure-consul"}},
	{name: "istio-rules", paths: []string{"testdata/TestImport/istio-rules"}, td: "shop.local"},
	{name: "consul-l7", paths: []string{"testdata/TestImport/consul-l7"}},
	{name: "bad-types", paths: []string{"testdata/TestImport/bad-types"}, none: true},
	{name: "insecure-linkerd", paths: []string{"../../examples/insecure-linkerd"}},
	{name: "linkerd-rules", paths: []string{"testdata/TestImport/linkerd-rules"}},
	{name: "exact", paths: []string{"testdata/TestImport/exact"}},
}

func load(t *testing.T, paths []string) []*scan.Object {
	t.Helper()
	objs, err := manifest.Load(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// render is the golden form of a result: every file, then the report.
func render(res *Result) string {
	var b strings.Builder
	for _, f := range res.Files {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f.Name, f.Data)
	}
	b.WriteString("==> report <==\n")
	for _, n := range res.Notes {
		b.WriteString(n.String() + "\n")
	}
	fmt.Fprintf(&b, "tests: %d, exact: %v\n", res.Tests, res.Exact())
	return b.String()
}

func TestImport(t *testing.T) {
	t.Parallel()
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Import(load(t, tc.paths), Options{TrustDomain: tc.td})
			if err != nil {
				t.Fatal(err)
			}
			got := render(res)
			golden := filepath.Join("testdata", "TestImport", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("import (-want +got):\n%s", diff)
			}
			// The files compile, and their tests run and pass on the engine.
			files := toPolicyFiles(res.Files)
			set, err := policy.Parse(files, policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e, err := set.Compile()
			if err != nil {
				t.Fatal(err)
			}
			rep, err := policytest.Run(set, e)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Passed == 0 || rep.Passed != res.Tests {
				var b bytes.Buffer
				_ = rep.WriteText(&b, false)
				t.Errorf("generated tests: %d passed, %d failed, want %d passing:\n%s", rep.Passed, rep.Failed, res.Tests, b.String())
			}
		})
	}
}

func TestImportNothing(t *testing.T) {
	t.Parallel()
	for _, paths := range [][]string{{"testdata/TestImport/no-authz"}, {"testdata/TestImport/empty"}} {
		objs, err := manifest.Load(paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Import(objs, Options{}); !errors.Is(err, ErrNothing) {
			t.Errorf("%v: err %v, want ErrNothing", paths, err)
		}
	}
	if _, err := Import(nil, Options{TrustDomain: "Not/A/Domain"}); err == nil {
		t.Error("a bad trust domain is accepted")
	}
}

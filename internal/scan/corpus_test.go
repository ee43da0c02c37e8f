package scan_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/rules"
)

// corpusNow is the evaluation time of every corpus case: the certificates
// under testdata/corpus were issued relative to it.
var corpusNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type key struct{ category, kind, namespace, name string }

func (k key) String() string {
	ns := k.namespace
	if ns == "" {
		ns = "-"
	}
	return fmt.Sprintf("%s %s %s %s", k.category, k.kind, ns, k.name)
}

// readExpected returns how often each finding is expected (a line listed
// twice expects two findings on the same object in the same category).
func readExpected(t *testing.T, path string) map[key]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open expected: %v", err)
	}
	defer f.Close()
	out := map[key]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 4 {
			t.Fatalf("%s:%d: want \"category kind namespace name\", got %q", path, n, line)
		}
		if fs[2] == "-" {
			fs[2] = ""
		}
		out[key{fs[0], fs[1], fs[2], fs[3]}]++
	}
	return out
}

type counts struct{ tp, fp, fn int }

func (c counts) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c counts) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

// TestCorpus scans every case under testdata/corpus/<case>/ (manifests plus
// expected.txt listing "category kind namespace name" per finding) and
// logs precision and recall per category and overall. Every case must
// match exactly, counting duplicates: one unexpected, missed or repeated
// finding fails the test, so no aggregate can hide a regression.
func TestCorpus(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "corpus", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no corpus cases: %v", err)
	}
	all := rules.All()
	per := map[string]*counts{}
	var total counts
	meshes := map[string]int{}
	cases := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		cases++
		name := filepath.Base(dir)
		meshes[strings.SplitN(name, "-", 2)[0]]++
		want := readExpected(t, filepath.Join(dir, "expected.txt"))
		objs, err := manifest.Load([]string{dir}, nil)
		if err != nil {
			t.Errorf("%s: load: %v", name, err)
			continue
		}
		res := scan.Run(scan.NewModel(objs, corpusNow), all, nil)
		got := map[key]int{}
		for _, f := range res.Findings {
			got[key{f.Category, f.Kind, f.Namespace, f.Name}]++
		}
		keys := map[key]bool{}
		for k := range got {
			keys[k] = true
		}
		for k := range want {
			keys[k] = true
		}
		for k := range keys {
			c := per[k.category]
			if c == nil {
				c = &counts{}
				per[k.category] = c
			}
			g, w := got[k], want[k]
			tp := min(g, w)
			c.tp += tp
			total.tp += tp
			if g > w {
				c.fp += g - w
				total.fp += g - w
				t.Errorf("%s: unexpected finding: %s (%d found, %d expected)", name, k, g, w)
			}
			if w > g {
				c.fn += w - g
				total.fn += w - g
				t.Errorf("%s: missed finding: %s (%d found, %d expected)", name, k, g, w)
			}
		}
	}
	cats := make([]string, 0, len(per))
	for c := range per {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-34s %4s %4s %4s %9s %7s\n", "category", "tp", "fp", "fn", "precision", "recall")
	for _, c := range cats {
		k := per[c]
		fmt.Fprintf(&b, "%-34s %4d %4d %4d %9.3f %7.3f\n", c, k.tp, k.fp, k.fn, k.precision(), k.recall())
	}
	fmt.Fprintf(&b, "%-34s %4d %4d %4d %9.3f %7.3f\n", "OVERALL", total.tp, total.fp, total.fn, total.precision(), total.recall())
	fmt.Fprintf(&b, "cases: %d (%v)\n", cases, meshes)
	t.Log(b.String())
	if cases < 60 {
		t.Errorf("corpus has %d cases, want at least 60", cases)
	}
	for _, cat := range scan.Categories {
		if per[cat] == nil {
			t.Errorf("category %s has no corpus case", cat)
		}
	}
}

// TestVendorDefaultsAreInformational: what a vendor's chart requires is
// reported once, as information, never high; the same setting copied to an
// application stays high.
func TestVendorDefaultsAreInformational(t *testing.T) {
	objs, err := manifest.Load([]string{filepath.Join("testdata", "corpus", "linkerd-control-plane-vendor-default")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := scan.Run(scan.NewModel(objs, corpusNow), rules.All(), nil)
	var vendor, app int
	for _, f := range res.Findings {
		switch {
		case f.Namespace == "linkerd":
			vendor++
			if f.Rule != "MW-LINKERD-012" || f.Severity != scan.SeverityInfo || !strings.Contains(f.Message, "linkerd/linkerd-identity") {
				t.Errorf("control-plane finding %s %s: %s; want MW-LINKERD-012 at info naming every component", f.Rule, f.Severity, f.Message)
			}
		case f.Name == "web":
			app++
			if f.Severity != scan.SeverityHigh {
				t.Errorf("an app with the open default: %s %s, want high", f.Rule, f.Severity)
			}
		}
	}
	if vendor != 1 || app != 1 {
		t.Errorf("%d control-plane and %d app findings, want 1 and 1: %+v", vendor, app, res.Findings)
	}
}

// TestUnverifiedContextIsLowSeverity: a finding that rests on a namespace
// the files do not declare says so and is low, not the rule's medium.
func TestUnverifiedContextIsLowSeverity(t *testing.T) {
	objs, err := manifest.Load([]string{filepath.Join("testdata", "corpus", "istio-unknown-namespace-source")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := scan.Run(scan.NewModel(objs, corpusNow), rules.All(), nil)
	n := 0
	for _, f := range res.Findings {
		if f.Rule == "MW-ISTIO-017" {
			n++
			if f.Severity != scan.SeverityLow || !strings.Contains(f.Message, "Unverified: namespace frontend is not in the input") {
				t.Errorf("%s %s: %s; want low and unverified", f.Rule, f.Severity, f.Message)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d MW-ISTIO-017 findings, want 1", n)
	}
}

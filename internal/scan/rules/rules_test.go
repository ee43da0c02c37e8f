package rules_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/report"
	"meshward.dev/meshward/internal/scan/rules"
)

var update = flag.Bool("update", false, "rewrite docs/rules.md")

func TestCatalogue(t *testing.T) {
	t.Parallel()
	all := rules.All()
	if len(all) == 0 {
		t.Fatal("no rules")
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].ID < all[j].ID }) {
		t.Error("rules.All is not sorted by ID")
	}
	seen := map[string]bool{}
	for _, r := range all {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
		if seen[r.ID] {
			t.Errorf("duplicate rule ID %s", r.ID)
		}
		seen[r.ID] = true
		if !strings.HasPrefix(r.ID, "MW-") {
			t.Errorf("rule ID %s lacks the MW- prefix", r.ID)
		}
	}
}

// TestDocsInSync fails when docs/rules.md drifts from the catalogue.
// Regenerate with: go test ./internal/scan/rules -run TestDocsInSync -update
// (or meshward scan rules -o markdown > docs/rules.md).
func TestDocsInSync(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := report.RulesMarkdown(&b, rules.All()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "..", "docs", "rules.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read docs/rules.md: %v", err)
	}
	if diff := cmp.Diff(b.String(), string(got)); diff != "" {
		t.Errorf("docs/rules.md drifted from the catalogue; run `meshward scan rules -o markdown > docs/rules.md` (-catalogue +file):\n%s", diff)
	}
}

// TestEveryRuleFires: each rule fires on at least one corpus case, so no
// rule is dead code. (Traps that must not fire are in the corpus too.)
func TestEveryRuleFires(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob(filepath.Join("..", "testdata", "corpus", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	fired := map[string]bool{}
	all := rules.All()
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		objs, err := manifest.Load([]string{d}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := scan.Run(scan.NewModel(objs, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)), all, nil)
		for _, f := range res.Findings {
			fired[f.Rule] = true
		}
	}
	for _, r := range all {
		if !fired[r.ID] {
			t.Errorf("rule %s (%s) fires on no corpus case", r.ID, r.Title)
		}
	}
}

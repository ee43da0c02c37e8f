package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/report"
	"meshward.dev/meshward/internal/scan/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

var fixedNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// exampleResult scans the shipped examples, with paths relative to the
// repository root so golden files do not depend on where tests run.
func exampleResult(t *testing.T) scan.Result {
	t.Helper()
	root := filepath.Join("..", "..", "..")
	var objs []*scan.Object
	for _, d := range []string{"examples/insecure-istio", "examples/insecure-linkerd", "examples/insecure-consul"} {
		got, err := manifest.Load([]string{filepath.Join(root, d)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, got...)
	}
	for _, o := range objs {
		rel, err := filepath.Rel(root, o.File)
		if err == nil {
			o.File = filepath.ToSlash(rel)
		}
	}
	ignores := []scan.Suppression{{Rule: "MW-CONSUL-007", Reason: "accepted until the CA moves to Vault"}}
	return scan.Run(scan.NewModel(objs, fixedNow), rules.All(), ignores)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", t.Name(), name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestReports(t *testing.T) {
	res := exampleResult(t)
	if len(res.Findings) == 0 || len(res.Suppressed) != 1 {
		t.Fatalf("examples gave %d findings and %d suppressed, want some and 1", len(res.Findings), len(res.Suppressed))
	}
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"text", func(b *bytes.Buffer) error { return report.Text(b, res, report.TextOptions{}) }},
		{"text-color", func(b *bytes.Buffer) error { return report.Text(b, res, report.TextOptions{Color: true}) }},
		{"json", func(b *bytes.Buffer) error { return report.JSON(b, res) }},
		{"sarif", func(b *bytes.Buffer) error { return report.SARIF(b, res, rules.All(), "test") }},
		{"empty-text", func(b *bytes.Buffer) error { return report.Text(b, scan.Result{}, report.TextOptions{}) }},
		{"empty-json", func(b *bytes.Buffer) error { return report.JSON(b, scan.Result{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, "out", b.Bytes())
		})
	}
}

func TestJSONShape(t *testing.T) {
	res := exampleResult(t)
	var b bytes.Buffer
	if err := report.JSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []map[string]any `json:"findings"`
		Summary  map[string]int   `json:"summary"`
	}
	dec := json.NewDecoder(&b)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	keys := []string{"rule", "category", "severity", "mesh", "kind", "namespace", "name", "file", "line", "message", "remediation"}
	for _, f := range doc.Findings {
		for _, k := range keys {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %v lacks %q", f["rule"], k)
			}
		}
		if _, err := scan.ParseSeverity(f["severity"].(string)); err != nil {
			t.Errorf("severity: %v", err)
		}
		if !strings.HasPrefix(f["rule"].(string), "MW-") {
			t.Errorf("rule %v", f["rule"])
		}
	}
	total := 0
	for _, sev := range []string{"critical", "high", "medium", "low", "info"} {
		n, ok := doc.Summary[sev]
		if !ok {
			t.Errorf("summary lacks %s", sev)
		}
		total += n
	}
	if total != len(doc.Findings) {
		t.Errorf("summary counts %d, findings %d", total, len(doc.Findings))
	}
}

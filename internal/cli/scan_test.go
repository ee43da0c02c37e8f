package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runScanArgs(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String() + errString(err), ExitCode(err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

const example = "../../examples/insecure-istio"

func TestScanExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"findings fail by default", "", []string{"scan", example}, 1, "mtls-permissive"},
		{"fail-on critical passes", "", []string{"scan", example, "--fail-on", "critical"}, 0, "findings on"},
		{"fail-on none", "", []string{"scan", example, "--fail-on", "none", "-o", "json"}, 0, `"summary"`},
		{"clean input", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n", []string{"scan", "-"}, 0, "0 findings"},
		{"stdin HCL", "acl {\n  default_policy = \"allow\"\n}\n", []string{"scan", "-", "-o", "json"}, 1, "consul-acl-default-allow"},
		{"bad output", "", []string{"scan", example, "-o", "xml"}, 2, ""},
		{"bad severity", "", []string{"scan", example, "--fail-on", "urgent"}, 2, ""},
		{"bad now", "", []string{"scan", example, "--now", "yesterday"}, 2, ""},
		{"no path", "", []string{"scan"}, 2, ""},
		{"missing path", "", []string{"scan", "does/not/exist"}, 2, ""},
		{"bad YAML names file and line, the scan goes on", "kind: [\n", []string{"scan", "-"}, 1, "-:1: invalid YAML"},
		{"unusable kubeconfig", "", []string{"scan", "--kubeconfig", "testdata-missing-kubeconfig"}, 2, ""},
		{"rules", "", []string{"scan", "rules"}, 0, "MW-ISTIO-001"},
		{"rules json", "", []string{"scan", "rules", "-o", "json"}, 0, `"category": "mtls-permissive"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runScanArgs(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tc.wantOut, out)
			}
		})
	}
}

func TestScanInputErrorNamesPosition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runScanArgs(t, "", "scan", p)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (a malformed document of a kind the scanner reads fails the scan, which goes on)\n%s", code, errOut)
	}
	if !strings.Contains(out, "NOT READ") || !strings.Contains(out, p+":5: metadata.labels") {
		t.Errorf("report does not name file:line: field of the malformed document:\n%s", out)
	}
	if _, _, code := runScanArgs(t, "", "scan", filepath.Join(dir, "no-such-file.yaml")); code != 2 {
		t.Errorf("a path that cannot be read: exit %d, want 2", code)
	}
}

// TestScanRepository scans a repository as teams keep one: a Helm chart
// (Chart.yaml, values.yaml, an unrendered template), kustomize bases and
// overlays, a kind cluster config, a CI file, a README, an unnamed
// IstioOperator, an empty List, and two malformed documents. Ordinary files
// are skipped and listed, never exit 2; the malformed ones are named with
// file, line and field and the scan goes on; the findings are exactly the
// two real ones.
func TestScanRepository(t *testing.T) {
	t.Parallel()
	repo := "testdata/scan-repo"
	out, errOut, code := runScanArgs(t, "", "scan", repo, "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	var rep struct {
		Findings []struct{ Rule, Kind, Namespace, Name string }
		Input    struct {
			Files    int
			Skipped  []struct{ File, Reason string }
			Problems []struct {
				File, Field, Message string
				Line                 int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var findings []string
	for _, f := range rep.Findings {
		findings = append(findings, f.Rule+" "+f.Kind+"/"+f.Namespace+"/"+f.Name)
	}
	wantFindings := []string{
		"MW-ISTIO-001 PeerAuthentication/istio-system/default",
		"MW-ISTIO-010 IstioOperator/default/installed-state", // the default profile's ALLOW_ANY
	}
	if strings.Join(findings, "\n") != strings.Join(wantFindings, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(findings, "\n"), strings.Join(wantFindings, "\n"))
	}
	var skipped []string
	for _, s := range rep.Input.Skipped {
		skipped = append(skipped, strings.TrimPrefix(s.File, repo+"/"))
	}
	wantSkipped := []string{"chart/Chart.yaml", "chart/templates/deployment.yaml", "chart/values.yaml", "ci/pipeline.yml",
		"deploy/base/kustomization.yaml", "deploy/overlays/prod/kustomization.yaml", "kind-cluster.yaml"}
	if strings.Join(skipped, " ") != strings.Join(wantSkipped, " ") {
		t.Errorf("skipped %v, want %v", skipped, wantSkipped)
	}
	var problems []string
	for _, p := range rep.Input.Problems {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", strings.TrimPrefix(p.File, repo+"/"), p.Line, p.Field, p.Message))
	}
	wantProblems := []string{
		"broken/list.yaml:8: items[1]: is a string, want a mapping (a Kubernetes object)",
		"broken/service.yaml:3: metadata.name: missing",
	}
	if strings.Join(problems, "\n") != strings.Join(wantProblems, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(wantProblems, "\n"))
	}
	if rep.Input.Files != 12 {
		t.Errorf("files %d, want 12 (README.md is not read)", rep.Input.Files)
	}

	// The text report counts what it skipped; -v lists it.
	text, _, _ := runScanArgs(t, "", "scan", repo)
	if !strings.Contains(text, "skipped 6 files: not Kubernetes objects of a kind the scanner reads") ||
		!strings.Contains(text, "skipped 1 file: unrendered template") || strings.Contains(text, "kind-cluster.yaml") {
		t.Errorf("text report does not count the skipped files:\n%s", text)
	}
	if verbose, _, _ := runScanArgs(t, "", "scan", repo, "-v"); !strings.Contains(verbose, "kind-cluster.yaml") {
		t.Errorf("-v does not list the skipped files:\n%s", verbose)
	}

	// Without the malformed files, only findings decide: none is critical.
	var paths []string
	for _, p := range []string{"chart", "deploy", "kind-cluster.yaml", "ci", "mesh", "README.md"} {
		paths = append(paths, filepath.Join(repo, p))
	}
	if out, errOut, code := runScanArgs(t, "", append([]string{"scan", "--fail-on", "critical"}, paths...)...); code != 0 {
		t.Errorf("clean part of the repository, --fail-on critical: exit %d, want 0\n%s%s", code, out, errOut)
	}
}

func TestScanIgnoreFileAndAnnotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ign := filepath.Join(dir, "ignore")
	if err := os.WriteFile(ign, []byte("# accepted risk\nMW-ISTIO-001 PeerAuthentication/istio-system/default # migration\nmtls-not-enforced-client\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, _ := runScanArgs(t, "", "scan", example, "--ignore", ign, "-o", "json")
	var doc struct {
		Findings   []struct{ Rule, Category string }
		Suppressed []struct{ Rule, Category string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Findings {
		if f.Rule == "MW-ISTIO-001" || f.Category == "mtls-not-enforced-client" {
			t.Errorf("suppressed finding reported: %+v", f)
		}
	}
	if len(doc.Suppressed) != 2 {
		t.Errorf("suppressed = %+v, want 2 entries", doc.Suppressed)
	}
	// Annotation on the object.
	in := "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\n  annotations:\n    meshward.dev/ignore: MW-ISTIO-001 until the migration ends\nspec:\n  mtls: {mode: PERMISSIVE}\n"
	text, _, code := runScanArgs(t, in, "scan", "-")
	if code != 0 || !strings.Contains(text, "1 suppressed") {
		t.Errorf("exit %d, output:\n%s", code, text)
	}
	bad := filepath.Join(dir, "bad-ignore")
	if err := os.WriteFile(bad, []byte("MW-ISTIO-001 a/b/c/d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runScanArgs(t, "", "scan", example, "--ignore", bad); code != 2 || !strings.Contains(errOut, "bad-ignore:1") {
		t.Errorf("bad ignore file: exit %d, %q", code, errOut)
	}
}

func TestScanNowFlagDrivesCertExpiry(t *testing.T) {
	t.Parallel()
	certs, err := filepath.Glob("../scan/testdata/corpus/cert-leaf-45d-ok/*.yaml")
	if err != nil || len(certs) == 0 {
		t.Fatalf("fixture: %v", err)
	}
	// 2026-12-01: 45 days left, fine. 2027-01-10: five days left.
	if out, _, code := runScanArgs(t, "", "scan", certs[0], "--now", "2026-12-01T00:00:00Z"); code != 0 {
		t.Errorf("at 2026-12-01: exit %d\n%s", code, out)
	}
	out, _, code := runScanArgs(t, "", "scan", certs[0], "--now", "2027-01-10T00:00:00Z")
	if code != 1 || !strings.Contains(out, "cert-expiring-soon") {
		t.Errorf("at 2027-01-10: exit %d\n%s", code, out)
	}
	out, _, _ = runScanArgs(t, "", "scan", certs[0], "--now", "2027-03-01T00:00:00Z")
	if !strings.Contains(out, "cert-expired") {
		t.Errorf("at 2027-03-01: want cert-expired\n%s", out)
	}
}

func TestScanSaysWhenNothingWasRecognized(t *testing.T) {
	t.Parallel()
	out, _, code := runScanArgs(t, "", "scan", "testdata/scan-repo/chart")
	if code != 0 || !strings.Contains(out, "nothing recognized: none of the 3 files holds") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

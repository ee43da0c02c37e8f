package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/testenv"
)

const (
	demoMesh     = "../../examples/demo/mesh.yaml"
	demoPolicies = "../../examples/demo/policies"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), ExitCode(err)
}

func TestPolicyLintCmd(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCLI(t, "policy", "lint", "--mesh", demoMesh, "--strict")
	if code != 0 || !strings.Contains(out, "4 policies, 0 warning(s)") {
		t.Fatalf("demo lint: code %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "policy", "lint", "../policy/testdata/TestLint/warnings", "--mesh", demoMesh, "-o", "json")
	if code != 0 {
		t.Fatalf("warnings exit %d without --strict", code)
	}
	var got struct {
		Warnings []struct{ Check, File string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Warnings) < 10 {
		t.Fatalf("lint -o json: %v\n%s", err, out)
	}
	if _, _, code = runCLI(t, "policy", "lint", "../policy/testdata/TestLint/warnings", "--mesh", demoMesh, "--strict"); code != 1 {
		t.Errorf("--strict with warnings: exit %d, want 1", code)
	}
	_, errOut, code = runCLI(t, "policy", "lint", "../policy/testdata/TestCompileErrors/fields", "--mesh", demoMesh)
	if code != 2 || !strings.Contains(errOut, `payments.yaml:12: spec.rules[0].to[0].methods[1]: "PSOT" is not an HTTP method`) {
		t.Errorf("bad policies: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestPolicyTestCmd(t *testing.T) {
	t.Parallel()
	junit := filepath.Join(t.TempDir(), "junit.xml")
	out, errOut, code := runCLI(t, "policy", "test", demoPolicies, "--mesh", demoMesh, "--junit", junit)
	if code != 0 || !strings.Contains(out, "0 failed; rule coverage 5/5 (100%)") {
		t.Fatalf("demo tests: exit %d\n%s%s", code, out, errOut)
	}
	x, err := os.ReadFile(junit)
	if err != nil || !bytes.Contains(x, []byte(`<testsuites tests="25" failures="0">`)) {
		t.Errorf("junit: %v\n%s", err, x)
	}
	out, _, code = runCLI(t, "policy", "test", "../policy/policytest/testdata/failing", "-o", "json")
	if code != 1 {
		t.Errorf("failing tests: exit %d, want 1", code)
	}
	var rep struct{ Failed int }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Failed != 2 {
		t.Errorf("test -o json: %v, failed %d\n%s", err, rep.Failed, out)
	}
	if _, _, code = runCLI(t, "policy", "test", "../policy/policytest/testdata/invalid"); code != 2 {
		t.Errorf("invalid tests: exit %d, want 2", code)
	}
}

func TestPolicyCmdUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"policy"},
		{"policy", "test"},
		{"policy", "lint", demoPolicies, "-o", "xml"},
		{"policy", "diff", demoPolicies},
		{"policy", "diff", demoPolicies, "no-such-dir"},
		{"policy", "lint", "no-such-dir"},
	} {
		if _, _, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// copyDir copies the demo policies so a test can change them.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func widenPayments(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "payments.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("from: [{service: orders}]"), []byte("from: [{service: orders}, {service: frontend}]"), 1)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyDiffCmd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyDir(t, demoPolicies, dir)
	widenPayments(t, dir)
	out, errOut, code := runCLI(t, "policy", "diff", demoPolicies, dir, "--mesh", demoMesh)
	want := "+ spiffe://shop.local/ns/default/sa/frontend -> default/payments:8084 POST /charge (payments/orders-charge)\n"
	if code != 1 || !strings.HasPrefix(out, want) || !strings.Contains(errOut, "access widens") {
		t.Fatalf("widening diff: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code = runCLI(t, "policy", "diff", demoPolicies, dir, "--allow-widen"); code != 0 {
		t.Errorf("--allow-widen: exit %d", code)
	}
	// The reverse change narrows: exit 0.
	out, _, code = runCLI(t, "policy", "diff", dir, demoPolicies, "-o", "json")
	var got struct {
		Widens  bool
		Changes []struct{ Added, Widen bool }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || got.Widens || len(got.Changes) != 1 || got.Changes[0].Added {
		t.Errorf("narrowing diff: exit %d, %v\n%s", code, err, out)
	}
}

func TestPolicyDiffGit(t *testing.T) {
	t.Parallel()
	testenv.Tool(t, "git", "git")
	repo := t.TempDir()
	copyDir(t, demoPolicies, filepath.Join(repo, "policies"))
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "policies")
	widenPayments(t, filepath.Join(repo, "policies"))
	var out, errb bytes.Buffer
	o := &policyDiffOptions{old: "HEAD:policies", new: filepath.Join(repo, "policies"), output: "text", gitDir: repo}
	err := runPolicyDiff(context.Background(), o, &out, &errb)
	if ExitCode(err) != 1 || !strings.Contains(out.String(), "sa/frontend -> default/payments:8084 POST /charge") {
		t.Fatalf("git diff: %v\n%s%s", err, out.String(), errb.String())
	}
	o.old = "no-such-rev:policies"
	if err := runPolicyDiff(context.Background(), o, &out, &errb); ExitCode(err) != 2 {
		t.Errorf("bad revision: %v", err)
	}
}

func TestPolicyLintSaysNamesWereNotChecked(t *testing.T) {
	t.Parallel()
	_, errOut, code := runCLI(t, "policy", "lint", demoPolicies)
	if code != 0 || !strings.Contains(errOut, "service names were not checked") {
		t.Fatalf("lint without --mesh: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, _ := runCLI(t, "policy", "lint", "--mesh", demoMesh); strings.Contains(errOut, "not checked") {
		t.Errorf("lint with --mesh says names were not checked: %q", errOut)
	}
}

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writePolicy writes one AccessPolicy for target into dir/name.
func writePolicy(t *testing.T, dir, name, target, from, path string) {
	t.Helper()
	doc := `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: ` + target + `}
spec:
  target: ` + target + `
  rules:
    - name: reads
      from: [{service: ` + from + `}]
      to: [{methods: [GET], paths: ["` + path + `"]}]
`
	if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// TestPolicyApply against a real control plane with real sidecars: a name
// the registry does not know is an error (with a suggestion), identical
// content is not a new revision, --dry-run shows the grants and stores
// nothing, --message is recorded.
func TestPolicyApply(t *testing.T) {
	t.Parallel()
	dir := startMesh(t, "frontend", "catalog")
	pol := t.TempDir()
	apply := func(args ...string) (string, string, int) {
		return runCLI(t, append([]string{"policy", "apply", "--data-dir", dir, pol}, args...)...)
	}
	writePolicy(t, pol, "catalog.yaml", "catalog", "frontend", "/products")
	if out := mustRun(t, "policy", "apply", "--data-dir", dir, pol, "-m", "frontend lists products"); !strings.Contains(out, "applied revision 1") || !strings.Contains(out, "not in git") {
		t.Fatalf("first apply: %s", out)
	}
	if out, _, code := apply(); code != 0 || !strings.Contains(out, "unchanged: revision 1 already holds this policy") {
		t.Fatalf("re-apply of identical content: exit %d: %s", code, out)
	}

	// A typo in a source or a target breaks traffic: refused, nothing stored.
	for _, tc := range []struct{ target, from, want string }{
		{"catalog", "frontnd", "spec.rules[0].from[0].service: default/frontnd is not a service of the control plane's registry"},
		{"catlog", "frontend", "spec.target: default/catlog is not a service of the control plane's registry"},
	} {
		bad := t.TempDir()
		writePolicy(t, bad, "p.yaml", tc.target, tc.from, "/x")
		_, errOut, code := runCLI(t, "policy", "apply", "--data-dir", dir, bad)
		if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "did you mean") {
			t.Errorf("apply with %s -> %s: exit %d, want 2 naming the field with a suggestion:\n%s", tc.from, tc.target, code, errOut)
		}
	}
	// A service not deployed yet, said so explicitly.
	writePolicy(t, pol, "payments.yaml", "payments", "catalog", "/charge")
	if _, errOut, code := apply(); code != 2 {
		t.Fatalf("apply naming undeployed payments: exit %d, want 2: %s", code, errOut)
	}
	if out, errOut, code := apply("--allow-unknown-services"); code != 0 || !strings.Contains(out, "applied revision 2") {
		t.Fatalf("--allow-unknown-services: exit %d: %s%s", code, out, errOut)
	}

	// --dry-run: the grants against the live revision, nothing stored.
	writePolicy(t, pol, "catalog.yaml", "catalog", "frontend", "/*")
	out, errOut, code := apply("--dry-run", "--allow-unknown-services")
	if code != 0 || !strings.Contains(out, "+ spiffe://shop.local/ns/default/sa/frontend -> default/catalog:* GET /*") || !strings.Contains(out, "dry run: would apply revision 3") {
		t.Fatalf("dry run: exit %d:\n%s%s", code, out, errOut)
	}
	hist := mustRun(t, "policy", "history", "--data-dir", dir)
	if strings.Contains(hist, "\n3 ") || !strings.Contains(hist, "frontend lists products") {
		t.Fatalf("history after a dry run (want 2 revisions, the first with its message):\n%s", hist)
	}
}

// TestPolicyApplyRecordsWhatGitHolds: the commit recorded is the commit
// only when every applied file is exactly that commit's; a changed,
// untracked or git-ignored policy file makes it COMMIT+dirty.
func TestPolicyApplyRecordsWhatGitHolds(t *testing.T) {
	t.Parallel()
	dir := startMesh(t)
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	pol := filepath.Join(repo, "policies")
	if err := os.Mkdir(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("*.local.yaml\n"), 0o600)
	writePolicy(t, pol, "catalog.yaml", "catalog", "frontend", "/a")
	git("add", ".")
	git("commit", "-q", "-m", "policies")
	head := git("rev-parse", "HEAD")
	commitOf := func(rev string) string {
		t.Helper()
		hist := mustRun(t, "policy", "history", "--data-dir", dir)
		for _, l := range strings.Split(hist, "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[0] == rev {
				return f[4]
			}
		}
		t.Fatalf("no revision %s in history:\n%s", rev, hist)
		return ""
	}
	mustRun(t, "policy", "apply", "--data-dir", dir, pol)
	if got := commitOf("1"); !strings.HasPrefix(got, head[:12]) || strings.HasSuffix(got, "+dirty") {
		t.Fatalf("clean tree recorded %q, want %s", got, head)
	}
	writePolicy(t, pol, "catalog.yaml", "catalog", "frontend", "/b") // modified
	mustRun(t, "policy", "apply", "--data-dir", dir, pol)
	if got := commitOf("2"); !strings.HasPrefix(got, head[:12]) || !strings.HasSuffix(got, "+dirty") {
		t.Fatalf("modified file recorded %q, want %s+dirty", got, head[:12])
	}
	git("checkout", "-q", "--", ".")
	writePolicy(t, pol, "extra.local.yaml", "orders", "frontend", "/c") // git-ignored, still applied
	mustRun(t, "policy", "apply", "--data-dir", dir, pol)
	if got := commitOf("3"); !strings.HasPrefix(got, head[:12]) || !strings.HasSuffix(got, "+dirty") {
		t.Fatalf("git-ignored policy file recorded %q, want %s+dirty", got, head[:12])
	}
}

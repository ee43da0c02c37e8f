//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	ciDir       = "../../examples/ci"
	demoDir     = "../../examples/demo"
	widenedRule = "+ spiffe://shop.local/ns/default/sa/catalog -> default/orders:8083 GET /health (orders/catalog-health)"
)

// policyRepo is a throwaway git repository: a first commit with only a
// README, then "main" with the demo's policies/ and mesh.yaml.
type policyRepo struct {
	t    *testing.T
	dir  string
	root string // the commit before the policies existed
}

func newPolicyRepo(t *testing.T) *policyRepo {
	t.Helper()
	r := &policyRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.write("README.md", "policies live here\n")
	r.commit("readme")
	r.root = strings.TrimSpace(r.git("rev-parse", "HEAD"))
	copyTree(t, filepath.Join(demoDir, "policies"), filepath.Join(r.dir, "policies"))
	b, err := os.ReadFile(filepath.Join(demoDir, "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r.write("mesh.yaml", string(b))
	r.commit("policies")
	r.git("checkout", "-q", "-b", "change")
	return r
}

func (r *policyRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (r *policyRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *policyRepo) appendTo(name, content string) {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(name, string(b)+content)
}

func (r *policyRepo) commit(msg string) {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
}

// run runs a script of examples/ci in the repository with only the given
// parameters set (none inherited from the test's environment).
func (r *policyRepo) run(script string, env ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	abs, err := filepath.Abs(filepath.Join(ciDir, script))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", abs)
	cmd.Dir = r.dir
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "POLICIES", "BASE", "MESH", "ALLOW_WIDEN", "STRICT", "JUNIT", "MESHWARD", "POLICY_CHECK":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "MESHWARD="+bin)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("%s: %v", script, err)
	}
	return out.String(), errb.String(), code
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// widen adds an allow rule: catalog may now call orders' /health.
func widen(r *policyRepo) {
	r.appendTo("policies/orders.yaml", `    - name: catalog-health
      from: [{service: catalog}]
      to:
        - ports: [8083]
          methods: [GET]
          paths: ["/health"]
`)
}

// TestPolicyCheckScript runs examples/ci/policy-check.sh, the script the
// GitHub Actions workflow and the pre-commit hook call, on a real git
// repository: each case changes the demo policies on a branch and checks
// the exit code, what the script printed and the JUnit file.
func TestPolicyCheckScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	params := []string{"POLICIES=policies", "MESH=mesh.yaml", "BASE=main", "JUNIT=policy-tests.xml"}
	for _, tc := range []struct {
		name     string
		change   func(*policyRepo)
		env      []string
		wantCode int
		want     []string // in stdout+stderr
		junit    string   // in the JUnit file ("": no file expected)
	}{
		{name: "unchanged branch passes", wantCode: 0,
			want:  []string{"25 passed, 0 failed", "0 grant(s) added (0 widen access), 0 removed", "policy-check: ok"},
			junit: `<testsuites tests="25" failures="0">`},
		{name: "new allow rule widens access", change: widen, wantCode: 1,
			want:  []string{widenedRule, "access widens", "access-widening label"},
			junit: `failures="0"`},
		{name: "widening allowed by the label", change: widen, env: []string{"ALLOW_WIDEN=1"}, wantCode: 0,
			want:  []string{widenedRule, "1 grant(s) added (1 widen access)", "policy-check: ok"},
			junit: `failures="0"`},
		{name: "comment-only change passes", wantCode: 0,
			change: func(r *policyRepo) { r.appendTo("policies/catalog.yaml", "# reviewed in 2026\n") },
			want:   []string{"0 grant(s) added (0 widen access), 0 removed", "policy-check: ok"}},
		{name: "failing PolicyTest case fails", wantCode: 1,
			change: func(r *policyRepo) {
				r.appendTo("policies/tests/frontend.yaml", `    - name: frontend may charge (it may not)
      from: frontend
      to: payments
      port: 8084
      request: {method: POST, path: /charge}
      expect: allow
`)
			},
			want:  []string{"frontend may charge (it may not)", "25 passed, 1 failed"},
			junit: `failures="1"`},
		{name: "invalid policy is bad input", wantCode: 2,
			change: func(r *policyRepo) {
				r.write("policies/broken.yaml", "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: broken, namespace: default}\nspec:\n  target: orders\n  colour: blue\n")
			},
			want: []string{"broken.yaml:6"}},
		{name: "policies new since BASE: every grant is new", wantCode: 1, env: []string{"BASE=ROOT"},
			want:  []string{"does not exist at", "6 grant(s) added (6 widen access)"},
			junit: `failures="0"`},
		{name: "unknown BASE is bad input", wantCode: 2, env: []string{"BASE=no-such-branch"},
			want: []string{"BASE=no-such-branch is not a commit"}},
		{name: "bad ALLOW_WIDEN is bad input", change: widen, wantCode: 2, env: []string{"ALLOW_WIDEN=maybe"},
			want: []string{"ALLOW_WIDEN must be"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newPolicyRepo(t)
			if tc.change != nil {
				tc.change(r)
				r.commit(tc.name)
			}
			env := append([]string{}, params...)
			for _, kv := range tc.env {
				env = append(env, strings.Replace(kv, "=ROOT", "="+r.root, 1))
			}
			out, errOut, code := r.run("policy-check.sh", env...)
			all := out + errOut
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tc.wantCode, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not say %q:\n%s", w, all)
				}
			}
			x, err := os.ReadFile(filepath.Join(r.dir, "policy-tests.xml"))
			if tc.junit == "" {
				return
			}
			if err != nil || !bytes.Contains(x, []byte(tc.junit)) {
				t.Errorf("JUnit file: %v, want %q in:\n%s", err, tc.junit, x)
			}
		})
	}
}

// TestPolicyPreCommitHook: the hook refuses a staged widening, lets it
// through with ALLOW_WIDEN=1, and ignores commits that leave the policies
// alone.
func TestPolicyPreCommitHook(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	r := newPolicyRepo(t)
	r.write("README.md", "unrelated\n")
	r.git("add", "README.md")
	if out, errOut, code := r.run("pre-commit"); code != 0 || out+errOut != "" {
		t.Errorf("commit without policy changes: exit %d, output %q", code, out+errOut)
	}
	widen(r)
	r.git("add", "-A")
	out, errOut, code := r.run("pre-commit", "MESH=mesh.yaml")
	if code != 1 || !strings.Contains(out, widenedRule) {
		t.Errorf("staged widening: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if _, errOut, code := r.run("pre-commit", "ALLOW_WIDEN=1"); code != 0 {
		t.Errorf("staged widening with ALLOW_WIDEN=1: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "policy-tests.xml")); err == nil {
		t.Error("the hook left a JUnit file in the work tree")
	}
}

// TestPolicyWorkflowCallsScript: the GitHub Actions example runs
// policy-check.sh with parameters the script reads, takes ALLOW_WIDEN from
// the access-widening label, reruns when labels change, and fetches the
// history the diff needs. The pre-commit config runs the hook, and the hook
// runs the script.
func TestPolicyWorkflowCallsScript(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(ciDir, "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		Name string            `json:"name"`
		Uses string            `json:"uses"`
		Run  string            `json:"run"`
		If   string            `json:"if"`
		With map[string]any    `json:"with"`
		Env  map[string]string `json:"env"`
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []step `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 reads the key "on" as true; sigs.k8s.io/yaml keeps it as "true".
	var top map[string]json.RawMessage
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	on := top["on"]
	if on == nil {
		on = top["true"]
	}
	var trig struct {
		PullRequest struct {
			Types []string `json:"types"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(on, &trig); err != nil {
		t.Fatalf("on: %v (%s)", err, on)
	}
	for _, want := range []string{"opened", "synchronize", "labeled", "unlabeled"} {
		if !slices.Contains(trig.PullRequest.Types, want) {
			t.Errorf("pull_request types %v lack %q: the check would not rerun", trig.PullRequest.Types, want)
		}
	}

	script, err := os.ReadFile(filepath.Join(ciDir, "policy-check.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var checks, checkouts []step
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			if strings.Contains(s.Run, "policy-check.sh") {
				checks = append(checks, s)
			}
			if strings.HasPrefix(s.Uses, "actions/checkout@") {
				checkouts = append(checkouts, s)
			}
		}
	}
	if len(checks) != 1 {
		t.Fatalf("%d steps run policy-check.sh, want 1", len(checks))
	}
	s := checks[0]
	if got := strings.TrimSpace(s.Run); got != "sh ci/policy-check.sh" {
		t.Errorf("run: %q, want the script and nothing else (the checks live in the script)", got)
	}
	for k := range s.Env {
		if !bytes.Contains(script, []byte(k+"=${"+k)) {
			t.Errorf("env %s is not a parameter of policy-check.sh", k)
		}
	}
	for k, want := range map[string]string{
		"ALLOW_WIDEN": "contains(github.event.pull_request.labels.*.name, 'access-widening')",
		"BASE":        "github.base_ref",
		"POLICIES":    "policies",
	} {
		if !strings.Contains(s.Env[k], want) {
			t.Errorf("env %s = %q, want it to use %s", k, s.Env[k], want)
		}
	}
	if len(checkouts) != 1 || checkouts[0].With["fetch-depth"] != float64(0) {
		t.Errorf("checkout steps %+v: want one with fetch-depth 0 (the diff reads the base branch)", checkouts)
	}

	var pc struct {
		Repos []struct {
			Hooks []struct {
				Entry         string `json:"entry"`
				PassFilenames *bool  `json:"pass_filenames"`
			} `json:"hooks"`
		} `json:"repos"`
	}
	b, err = os.ReadFile(filepath.Join(ciDir, "pre-commit-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	if len(pc.Repos) != 1 || len(pc.Repos[0].Hooks) != 1 || pc.Repos[0].Hooks[0].Entry != "sh ci/pre-commit" ||
		pc.Repos[0].Hooks[0].PassFilenames == nil || *pc.Repos[0].Hooks[0].PassFilenames {
		t.Errorf("pre-commit-config.yaml: %+v, want one hook running sh ci/pre-commit without file names", pc)
	}
	hook, err := os.ReadFile(filepath.Join(ciDir, "pre-commit"))
	if err != nil || !bytes.Contains(hook, []byte(`exec sh "$script"`)) || !bytes.Contains(hook, []byte("policy-check.sh")) {
		t.Errorf("the pre-commit hook does not run policy-check.sh: %v", err)
	}
}

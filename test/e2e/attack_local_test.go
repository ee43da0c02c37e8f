//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 13, item 4: an app under `meshward up` tries to take the mesh:
// meshward's secrets from its environment, other services' SVIDs from
// their Workload API sockets, the data dir (CA, store, admin credential).
// The app is testdata/attacklocal.

// localAttackDir is a directory every user may enter, with the attack app
// built in it (apps of user: nobody must be able to run it).
func localAttackDir(t *testing.T) (dir, app string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "meshward-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	app = filepath.Join(dir, "attacklocal")
	build := exec.Command("go", "build", "-o", app, "./testdata/attacklocal")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build attack app: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, app
}

// localAttackMesh writes a mesh of two attack apps, alpha and beta, each
// run as user (none when empty), and returns its file and app ports.
func localAttackMesh(t *testing.T, dir, app, user string) (file string, alpha, beta string) {
	t.Helper()
	port := func() string { _, p, _ := net.SplitHostPort(freePort(t)); return p }
	alpha, beta = port(), port()
	userLine := ""
	if user != "" {
		userLine = "\n      user: " + user
	}
	mesh := fmt.Sprintf(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: attack}
spec:
  trustDomain: attack.local
  dataDir: ./data
  control: {listen: %s}
  dashboard: {listen: %s}
  services:
    - name: alpha
      command: [%q]
      port: %s
      env: {GREETING: hello-from-env}%s
    - name: beta
      command: [%q]
      port: %s%s
`, freePort(t), freePort(t), app, alpha, userLine, app, beta, userLine)
	file = filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(file, []byte(mesh), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, "127.0.0.1:" + alpha, "127.0.0.1:" + beta
}

// localAttackGet asks the attack app at addr to do something.
func localAttackGet(t *testing.T, addr, path string, query ...string) string {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(query); i += 2 {
		q.Set(query[i], query[i+1])
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get("http://" + addr + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// localAttackSocket is the Workload API socket up gave the app at addr.
func localAttackSocket(t *testing.T, addr string) string {
	t.Helper()
	for _, kv := range strings.Split(localAttackGet(t, addr, "/env"), "\n") {
		if v, ok := strings.CutPrefix(kv, "SPIFFE_ENDPOINT_SOCKET=unix://"); ok {
			return v
		}
	}
	t.Fatalf("the app at %s has no SPIFFE_ENDPOINT_SOCKET", addr)
	return ""
}

const (
	localAttackStoreKey = "6d65736877617264206c6f63616c2061747461636b2073746f7265206b657921"
	localAttackAlphaID  = "spiffe://attack.local/ns/default/sa/alpha"
	localAttackRefused  = "refused PermissionDenied: this socket does not serve the calling process"
)

// TestAttackLocalSameUser: every app runs as the mesh's own user. The app
// finds none of meshward's secrets in its environment, and gets its own
// SVID (also from a child process) but not beta's, whose socket it can
// open; nor does a process outside the app get alpha's.
func TestAttackLocalSameUser(t *testing.T) {
	dir, app := localAttackDir(t)
	file, alpha, beta := localAttackMesh(t, dir, app, "")
	secrets := map[string]string{
		"MESHWARD_STORE_KEY":    localAttackStoreKey,
		"MESHWARD_TOKEN":        "e2e-join-token-must-not-leak",
		"MESHWARD_DATA_DIR":     "/e2e/data-dir-must-not-leak",
		"MESHWARD_CONTROL":      "127.0.0.1:1-must-not-leak",
		"MESHWARD_ADMIN_TOKEN":  "e2e-admin-must-not-leak",
		"AWS_SECRET_ACCESS_KEY": "e2e-cloud-must-not-leak",
	}
	var env []string
	for k, v := range secrets {
		env = append(env, k+"="+v)
	}
	up := start(t, env, "up", "-f", file, "--data-dir", filepath.Join(dir, "data"))
	up.waitOutput(t, "is up", 60*time.Second)

	t.Run("the environment holds no secret", func(t *testing.T) {
		got := localAttackGet(t, alpha, "/env")
		for k, v := range secrets {
			if strings.Contains(got, v) || strings.Contains(got, k+"=") {
				t.Errorf("the app sees %s", k)
			}
		}
		for _, want := range []string{"GREETING=hello-from-env", "MESHWARD_LISTEN=" + alpha, "MESHWARD_SERVICE=alpha", "SPIFFE_ENDPOINT_SOCKET=unix://", "PATH="} {
			if !strings.Contains(got, want) {
				t.Errorf("the app's environment has no %s:\n%s", want, got)
			}
		}
	})
	alphaSock, betaSock := localAttackSocket(t, alpha), localAttackSocket(t, beta)
	t.Run("the app and its child get its own SVID", func(t *testing.T) {
		if got := localAttackGet(t, alpha, "/fetch", "socket", alphaSock); got != "ok "+localAttackAlphaID {
			t.Fatalf("alpha's own fetch: %q\n%s", got, tail(up.out.String(), 30))
		}
		if got := localAttackGet(t, alpha, "/spawn-fetch", "socket", alphaSock); got != "ok "+localAttackAlphaID {
			t.Fatalf("alpha's child's fetch: %q", got)
		}
	})
	t.Run("another app cannot have beta's SVID", func(t *testing.T) {
		for _, path := range []string{"/fetch", "/spawn-fetch"} {
			if got := localAttackGet(t, alpha, path, "socket", betaSock); !strings.HasPrefix(got, localAttackRefused) {
				t.Errorf("alpha %s of beta's socket: %q; want PermissionDenied", path, got)
			}
		}
	})
	t.Run("a process outside the app cannot have its SVID", func(t *testing.T) {
		out, _ := exec.Command(app, "fetch", alphaSock).CombinedOutput()
		if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, localAttackRefused) {
			t.Fatalf("a stranger's fetch of alpha's socket: %q; want PermissionDenied", got)
		}
	})
	up.waitOutput(t, "workload api caller refused", 5*time.Second)
}

// TestAttackLocalAppUser: run as root, user: runs each app as nobody. The
// app cannot list the data dir, read the store, the CA or the admin
// credential, nor up's environment (the store key); it still gets its own
// SVID and still not its neighbour's (same user, other process tree).
// Without root, user: is an input error (exit 2) naming file, line, field.
func TestAttackLocalAppUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("user: needs meshward up to run as root")
	}
	dir, app := localAttackDir(t)
	file, alpha, beta := localAttackMesh(t, dir, app, "nobody")

	t.Run("without root it is an input error", func(t *testing.T) {
		exe := filepath.Join(dir, "meshward")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "up", "-f", file, "--data-dir", filepath.Join(dir, "nobody-data"))
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), file+":14: spec.services[0].user: running alpha as \"nobody\" needs meshward up to run as root (it runs as uid 65534)") {
			t.Fatalf("up as nobody: %v\n%s", err, out)
		}
	})

	// A data dir left open by an earlier run (a loose umask): up closes it.
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "admin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dataDir, filepath.Join(dataDir, "admin")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	up := start(t, []string{"MESHWARD_STORE_KEY=" + localAttackStoreKey}, "up", "-f", file, "--data-dir", dataDir)
	up.waitOutput(t, "is up", 60*time.Second)
	if got := localAttackGet(t, alpha, "/whoami"); got != "65534" {
		t.Fatalf("alpha runs as uid %s; want 65534 (nobody)", got)
	}
	t.Run("the data dir is closed to the app", func(t *testing.T) {
		for _, p := range []string{
			dataDir,
			filepath.Join(dataDir, "meshward.db"),
			filepath.Join(dataDir, "admin"),
			filepath.Join(dataDir, "admin", "key.pem"),
			filepath.Join(dataDir, "admin", "svid.pem"),
			fmt.Sprintf("/proc/%d/environ", up.cmd.Process.Pid),
		} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("%s: %v (the test's premise)", p, err)
			}
			if got := localAttackGet(t, alpha, "/read", "path", p); !strings.HasPrefix(got, "err ") || !strings.Contains(got, "permission denied") {
				t.Errorf("app reads %s: %q; want permission denied", p, got)
			}
		}
		if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
		}
	})
	t.Run("the environment is the app user's", func(t *testing.T) {
		got := localAttackGet(t, alpha, "/env")
		if strings.Contains(got, localAttackStoreKey) || !strings.Contains(got, "USER=nobody") {
			t.Fatalf("app environment:\n%s", got)
		}
	})
	alphaSock, betaSock := localAttackSocket(t, alpha), localAttackSocket(t, beta)
	if strings.HasPrefix(alphaSock, dataDir) {
		t.Fatalf("alpha's socket %s is inside the data dir it may not enter", alphaSock)
	}
	t.Run("the app gets its own SVID, not its neighbour's", func(t *testing.T) {
		if got := localAttackGet(t, alpha, "/fetch", "socket", alphaSock); got != "ok "+localAttackAlphaID {
			t.Fatalf("alpha's own fetch: %q\n%s", got, tail(up.out.String(), 30))
		}
		if got := localAttackGet(t, alpha, "/fetch", "socket", betaSock); !strings.HasPrefix(got, localAttackRefused) {
			t.Fatalf("alpha's fetch of beta's socket: %q; want PermissionDenied", got)
		}
	})
}

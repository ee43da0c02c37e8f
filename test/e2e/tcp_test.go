//go:build e2e

package e2e

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTCPExample runs examples/tcp-echo: an L4 service whose policy is
// decided per connection. The allowed caller gets its bytes echoed over
// mTLS; the other caller's connection is closed and the deny is audited.
func TestTCPExample(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), ".meshward")
	up := start(t, nil, "up", "-f", "../../examples/tcp-echo/mesh.yaml", "--data-dir", dataDir)
	up.waitOutput(t, "is up", 60*time.Second)

	echo := func(addr string) (string, error) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hello over mTLS\n")); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	got, err := echo("127.0.0.1:9100")
	if err != nil || got != "hello over mTLS\n" {
		t.Fatalf("client -> echo: %q, %v; output:\n%s", got, err, tail(up.out.String(), 40))
	}
	if got, err := echo("127.0.0.1:9101"); err == nil || got != "" {
		t.Fatalf("intruder -> echo got %q; want the connection closed", got)
	}
	up.waitOutput(t, `msg="connection denied" component=proxy service=echo peer=spiffe://echo.local/ns/default/sa/intruder policy=echo rule=default-deny`, 5*time.Second)

	// Re-running up reuses the data dir: same CA. --fresh starts over.
	root := rootFingerprint(t, dataDir)
	up.stop(t)
	again := start(t, nil, "up", "-f", "../../examples/tcp-echo/mesh.yaml", "--data-dir", dataDir)
	again.waitOutput(t, "is up", 60*time.Second)
	if got := rootFingerprint(t, dataDir); got != root {
		t.Fatalf("a second up made a new CA (%s -> %s)", root, got)
	}
	if got, err := echo("127.0.0.1:9100"); err != nil || got != "hello over mTLS\n" {
		t.Fatalf("after restart: %q, %v; output:\n%s", got, err, tail(again.out.String(), 40))
	}
	again.stop(t)
	fresh := start(t, nil, "up", "-f", "../../examples/tcp-echo/mesh.yaml", "--data-dir", dataDir, "--fresh")
	fresh.waitOutput(t, "is up", 60*time.Second)
	if got := rootFingerprint(t, dataDir); got == root {
		t.Fatal("--fresh kept the old CA")
	}
}

// TestUpSaysWhichAppIsNotReady: "is up" means every app listens. An app
// that exits at start is given up on after a few restarts, and up names
// it with its exit code and its last output instead of the banner.
func TestUpSaysWhichAppIsNotReady(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	mesh := `apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: broken}
spec:
  trustDomain: broken.local
  control: {listen: 127.0.0.1:7454}
  dashboard: {listen: 127.0.0.1:9911}
  policies: ./policies
  services:
    - name: echo
      command: ["meshward", "demo-app", "tcp-echo"]
      port: 7017
      protocol: tcp
    - name: crashy
      command: ["sh", "-c", "echo cannot read /etc/crashy.conf >&2; exit 3"]
      port: 7018
      protocol: tcp
`
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(mesh), 0o644); err != nil {
		t.Fatal(err)
	}
	up := start(t, nil, "up", "-f", filepath.Join(dir, "mesh.yaml"), "--data-dir", filepath.Join(dir, ".meshward"))
	up.waitOutput(t, `mesh "broken" is NOT ready`, 90*time.Second)
	out := up.out.String()
	for _, want := range []string{
		"crashy is not running: it exited (exit code 3) 5 times in a row",
		"| cannot read /etc/crashy.conf",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up's output does not contain %q:\n%s", want, tail(out, 40))
		}
	}
	if strings.Contains(out, "is up") {
		t.Errorf("up printed the banner over a dead app:\n%s", tail(out, 40))
	}
	if strings.Contains(out, "echo is not") {
		t.Errorf("up named echo, which listens, as not ready:\n%s", tail(out, 40))
	}
}

//go:build e2e

package e2e

import (
	"bufio"
	"net"
	"path/filepath"
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

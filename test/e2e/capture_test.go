//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/testenv"
)

// TestCaptureCommand drives `meshward capture` against a network namespace
// of its own (joined by a veth pair to a second one, so the probe address
// has a route): validate fails before install, install validates, a second
// install changes nothing, remove restores the rules exactly, validate fails
// again. The root namespace's rules are never touched.
func TestCaptureCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("capture needs root (network namespaces, iptables)")
		}
		t.Skip("capture needs root (network namespaces, iptables)")
	}
	ipt := testenv.Tool(t, "iptables-nft-save", "iptables")
	testenv.Tool(t, "ip", "iproute2")
	sh := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	pod := "mw-cap-" + hex.EncodeToString(b[:]) + "-e2e"
	peer := pod + "-peer"
	for _, ns := range []string{pod, peer} {
		sh("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
		sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh("ip", "-n", pod, "link", "add", "vpod", "type", "veth", "peer", "name", "vpeer", "netns", peer)
	sh("ip", "-n", pod, "addr", "add", "198.18.0.1/24", "dev", "vpod")
	sh("ip", "-n", peer, "addr", "add", "198.18.0.2/24", "dev", "vpeer")
	sh("ip", "-n", pod, "link", "set", "vpod", "up")
	sh("ip", "-n", peer, "link", "set", "vpeer", "up")
	// Someone else's rule, which must survive install and remove.
	sh("ip", "netns", "exec", pod, strings.TrimSuffix(ipt, "-save"), "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "RETURN")
	dump := func() string {
		t.Helper()
		var keep []string
		for _, l := range strings.Split(sh("ip", "netns", "exec", pod, ipt), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	before := dump()
	flags := []string{"--netns", pod, "--inbound-port", "4143", "--outbound-port", "4140", "--admin-port", "4191", "--proxy-uid", "2102", "--probe-addr", "198.18.0.2:20001", "--probe-timeout", "3s"}
	with := func(cmd string, extra ...string) []string {
		return append(append([]string{"capture", cmd}, flags...), extra...)
	}

	if _, errOut, code := meshward(t, with("validate")...); code != 1 || !strings.Contains(errOut, "not in place") {
		t.Fatalf("validate before install: exit %d, %s; want 1 and not in place", code, errOut)
	}
	if _, errOut, code := meshward(t, with("install", "--proxy-uid", "0")...); code != 2 || !strings.Contains(errOut, "--proxy-uid") {
		t.Fatalf("install --proxy-uid 0: exit %d, %s; want 2 naming --proxy-uid", code, errOut)
	}
	if d := dump(); d != before {
		t.Fatalf("a rejected install changed the rules:\n%s", d)
	}
	if out := mustMeshward(t, with("install")...); !strings.Contains(out, "capture validated") {
		t.Fatalf("install did not validate: %s", out)
	}
	once := dump()
	mustMeshward(t, with("install")...)
	if twice := dump(); twice != once {
		t.Errorf("a second install changed the rules:\n%s\n---\n%s", once, twice)
	}
	rendered := mustMeshward(t, "capture", "render", "--inbound-port", "4143", "--outbound-port", "4140", "--admin-port", "4191", "--proxy-uid", "2102")
	for _, l := range strings.Split(rendered, "\n") {
		if strings.HasPrefix(l, "-A ") && !strings.Contains(once, l) {
			t.Errorf("rendered rule not installed: %s", l)
		}
	}
	if !strings.Contains(once, "-A OUTPUT -p udp -m udp --dport 53 -j RETURN") {
		t.Errorf("install dropped someone else's rule:\n%s", once)
	}
	mustMeshward(t, with("validate")...)
	mustMeshward(t, "capture", "remove", "--netns", pod)
	if after := dump(); after != before {
		t.Errorf("remove did not restore the rules:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, errOut, code := meshward(t, with("validate")...); code != 1 || !strings.Contains(errOut, "not in place") {
		t.Errorf("validate after remove: exit %d, %s; want 1", code, errOut)
	}
}

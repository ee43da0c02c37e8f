package cli

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/capture"
)

func runCaptureArgs(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Execute(ctx, append([]string{"capture"}, args...), &out, &errb)
	return out.String(), errb.String(), ExitCode(err)
}

var captureBase = []string{"--inbound-port", "4143", "--outbound-port", "4140", "--admin-port", "4191", "--proxy-uid", "2102"}

func TestCaptureRender(t *testing.T) {
	t.Parallel()
	args := append([]string{"render"}, captureBase...)
	args = append(args, "--inbound-ports", "8080,9090", "--exclude-outbound-ports", "5432",
		"--exclude-outbound-cidrs", "169.254.169.254/32,10.96.0.0/12", "--exclude-inbound-cidrs", "10.0.0.0/8",
		"--exclude-inbound-ports", "22", "--proxy-gid", "2103")
	out, errOut, code := runCaptureArgs(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := capture.Render(capture.Config{
		InboundPort: 4143, OutboundPort: 4140, AdminPort: 4191, ProxyUID: 2102, ProxyGID: 2103,
		InboundPorts: []int{8080, 9090}, ExcludeInboundPorts: []int{22}, ExcludeOutboundPorts: []int{5432},
		ExcludeInboundCIDRs:  prefixList(t, "10.0.0.0/8"),
		ExcludeOutboundCIDRs: prefixList(t, "169.254.169.254/32", "10.96.0.0/12"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
}

func prefixList(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	p, err := capture.ParseCIDRs("test", s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCaptureUsageErrors: every bad input is exit 2 naming its flag, and
// nothing is installed or removed first.
func TestCaptureUsageErrors(t *testing.T) {
	t.Parallel()
	with := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, captureBase...), extra...)
	}
	cases := []struct {
		name string
		args []string
		flag string
	}{
		{"no inbound port", []string{"render", "--outbound-port", "4140", "--proxy-uid", "2102"}, "--inbound-port"},
		{"no proxy uid", []string{"render", "--inbound-port", "4143", "--outbound-port", "4140"}, "--proxy-uid"},
		{"root proxy", with("render", "--proxy-uid", "0"), "--proxy-uid"},
		{"negative uid", with("render", "--proxy-uid", "-7"), "--proxy-uid"},
		{"port too big", with("render", "--outbound-port", "70000"), "--outbound-port"},
		{"same ports", with("render", "--outbound-port", "4143"), "--outbound-port"},
		{"bad app port", with("render", "--inbound-ports", "80,http"), "--inbound-ports"},
		{"bad excluded port", with("render", "--exclude-outbound-ports", "0"), "--exclude-outbound-ports"},
		{"bad cidr", with("render", "--exclude-inbound-cidrs", "10.0.0.0/40"), "--exclude-inbound-cidrs"},
		{"host bits", with("render", "--exclude-outbound-cidrs", "10.0.0.1/8"), "--exclude-outbound-cidrs"},
		{"ipv6 cidr", with("render", "--exclude-outbound-cidrs", "fd00::/8"), "--exclude-outbound-cidrs"},
		{"bad netns", with("install", "--netns", "../etc"), "--netns"},
		{"bad iptables", with("install", "--iptables", "ipchains"), "--iptables"},
		{"bad probe addr", with("validate", "--probe-addr", "localhost"), "--probe-addr"},
		{"loopback probe", with("validate", "--probe-addr", "127.0.0.1:80"), "--probe-addr"},
		{"proxy probe", with("validate", "--probe-uid", "2102", "--probe-addr", "192.0.2.1:80"), "--probe-uid"},
		{"bad netns remove", []string{"remove", "--netns", "a/b"}, "--netns"},
		{"argument", []string{"remove", "extra"}, "argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runCaptureArgs(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tc.flag) {
				t.Errorf("stderr does not name %s: %s", tc.flag, errOut)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}

func TestCaptureHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"render", "install", "remove", "validate"} {
		out, errOut, code := runCaptureArgs(t, sub, "--help")
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "meshward capture "+sub) {
			t.Errorf("capture %s --help: exit %d, no example:\n%s%s", sub, code, out, errOut)
		}
	}
}

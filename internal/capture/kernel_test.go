package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKernelCapture installs capture in a real pod namespace: a client
// outside dialing the app's plaintext port lands on the sidecar's mTLS
// listener and is refused without a client certificate; the app's user is
// redirected outbound, the proxy's is not; Install twice is Install once;
// Validate passes only with capture in place; Remove restores the
// iptables-save dump exactly.
func TestKernelCapture(t *testing.T) {
	requireKernel(t)
	pod, peer := newPod(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tg := Target{NetNS: pod}
	cfg := Config{InboundPort: 4143, OutboundPort: 4140, AdminPort: 4191, ProxyUID: proxyUID, ExcludeOutboundPorts: []int{9998}}
	probe := Probe{Addr: netip.AddrPortFrom(peerIP, 20001), Timeout: 3 * time.Second}

	// Someone else's rules, which capture must leave as they are.
	iptables(t, pod, "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "RETURN")
	iptables(t, pod, "-t", "filter", "-A", "INPUT", "-p", "icmp", "-j", "ACCEPT")
	before := save(t, tg)

	cert, roots := selfSigned(t)
	app := serve(t, pod, fmt.Sprintf("0.0.0.0:%d", appPort), "app")
	serve(t, pod, "0.0.0.0:4191", "admin")
	tlsErrs := serveTLS(t, pod, "0.0.0.0:4143", cert)
	serve(t, peer, "0.0.0.0:9999", "upstream")
	serve(t, peer, "0.0.0.0:9998", "upstream-excluded")
	appAddr := netip.AddrPortFrom(podIP, appPort).String()
	upstream := netip.AddrPortFrom(peerIP, 9999).String()

	// Without capture the test's plumbing reaches the app and the upstream
	// directly, so what follows shows capture at work, not broken plumbing.
	if got := dialAs(t, peer, 0, appAddr); got != "app" {
		t.Fatalf("before capture, the peer read %q from the app port, want app", got)
	}
	if got := dialAs(t, pod, appUID, upstream); got != "upstream" {
		t.Fatalf("before capture, the app read %q from the upstream, want upstream", got)
	}
	if err := tg.Validate(ctx, cfg, probe); !errors.Is(err, ErrNotCaptured) {
		t.Fatalf("Validate before Install = %v, want ErrNotCaptured", err)
	}
	if err := tg.probe(ctx, cfg, probe); err == nil {
		t.Fatal("the live probe passed before Install")
	}

	if err := tg.Install(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	once := save(t, tg)
	if err := tg.Install(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(once, save(t, tg)); diff != "" {
		t.Errorf("a second Install changed the rules (-once +twice):\n%s", diff)
	}
	if !strings.Contains(once, "-A OUTPUT -p udp -m udp --dport 53 -j RETURN") {
		t.Errorf("Install dropped someone else's rule:\n%s", once)
	}

	t.Run("validate", func(t *testing.T) {
		if err := tg.probe(ctx, cfg, probe); err != nil {
			t.Fatalf("the live probe after Install: %v", err)
		}
		if err := tg.Validate(ctx, cfg, probe); err != nil {
			t.Fatalf("Validate after Install: %v", err)
		}
		asApp := probe
		asApp.UID = appUID
		if err := tg.Validate(ctx, cfg, asApp); err != nil {
			t.Fatalf("Validate probing as uid %d: %v", appUID, err)
		}
		asProxy := probe
		asProxy.UID = proxyUID
		var fe *FieldError
		if err := tg.Validate(ctx, cfg, asProxy); !errors.As(err, &fe) || fe.Field != "Probe.UID" {
			t.Fatalf("Validate probing as the proxy = %v, want a Probe.UID error", err)
		}
		other := cfg
		other.OutboundPort = 15001
		if err := tg.Validate(ctx, other, probe); !errors.Is(err, ErrNotCaptured) {
			t.Fatalf("Validate of another config = %v, want ErrNotCaptured", err)
		}
	})

	t.Run("inbound plaintext lands on the mTLS listener", func(t *testing.T) {
		before := app.conns.Load()
		err := dialTLS(t, peer, appAddr, roots)
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("TLS without a client certificate to the app port: %v, want the sidecar's certificate required alert", err)
		}
		select {
		case herr := <-tlsErrs:
			if herr == nil || !strings.Contains(herr.Error(), "didn't provide a certificate") {
				t.Errorf("sidecar handshake error = %v, want a missing client certificate", herr)
			}
		case <-time.After(5 * time.Second):
			t.Error("the connection never reached the sidecar's TLS listener")
		}
		// Plaintext too: the sidecar refuses it, the app sees nothing.
		_ = InNetNS(peer, func() error {
			c, err := net.DialTimeout("tcp4", appAddr, 5*time.Second)
			if err != nil {
				t.Errorf("dial app port: %v", err)
				return nil
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
			if n, _ := c.Read(make([]byte, 64)); n > 0 && app.conns.Load() > before {
				t.Error("plaintext reached the app")
			}
			return nil
		})
		select {
		case herr := <-tlsErrs:
			if herr == nil {
				t.Error("the sidecar completed a handshake with a plaintext client")
			}
		case <-time.After(5 * time.Second):
			t.Error("plaintext never reached the sidecar's TLS listener")
		}
		if n := app.conns.Load() - before; n != 0 {
			t.Errorf("the app accepted %d connections from outside; want 0", n)
		}
		if got := dialAs(t, peer, 0, netip.AddrPortFrom(podIP, 4191).String()); got != "admin" {
			t.Errorf("the admin port answered %q, want admin (never redirected)", got)
		}
	})

	t.Run("outbound is captured except for the proxy", func(t *testing.T) {
		serve(t, pod, fmt.Sprintf("127.0.0.1:%d", cfg.OutboundPort), "captured")
		if got := dialAs(t, pod, appUID, upstream); got != "captured" {
			t.Errorf("the app's connection to %s read %q, want captured", upstream, got)
		}
		if got := dialAs(t, pod, proxyUID, upstream); got != "upstream" {
			t.Errorf("the proxy's connection to %s read %q, want upstream (exempt by UID)", upstream, got)
		}
		if got := dialAs(t, pod, appUID, netip.AddrPortFrom(peerIP, 9998).String()); got != "upstream-excluded" {
			t.Errorf("the app's connection to an excluded port read %q, want upstream-excluded", got)
		}
		if got := dialAs(t, pod, appUID, fmt.Sprintf("127.0.0.1:%d", appPort)); got != "app" {
			t.Errorf("the app's loopback connection read %q, want app (loopback is left alone)", got)
		}
	})

	if err := tg.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, save(t, tg)); diff != "" {
		t.Errorf("Remove did not restore the rules (-before +after):\n%s", diff)
	}
	if err := tg.Remove(ctx); err != nil {
		t.Errorf("a second Remove: %v", err)
	}
	if diff := cmp.Diff(before, save(t, tg)); diff != "" {
		t.Errorf("a second Remove changed the rules (-before +after):\n%s", diff)
	}
	if got := dialAs(t, peer, 0, appAddr); got != "app" {
		t.Errorf("after Remove, the peer read %q from the app port, want app", got)
	}
}

// TestKernelFreshNamespace installs into and removes from a namespace with
// no rules at all. iptables-nft cannot delete a table, so what stays is an
// empty nat table: four built-in chains, ACCEPT, no rules.
func TestKernelFreshNamespace(t *testing.T) {
	requireKernel(t)
	pod, _ := newPod(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tg := Target{NetNS: pod}
	if before := save(t, tg); before != "" {
		t.Fatalf("a fresh namespace has rules:\n%s", before)
	}
	if err := tg.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if after := save(t, tg); after != "" {
		t.Fatalf("Remove with nothing installed created rules:\n%s", after)
	}
	if err := tg.Install(ctx, base()); err != nil {
		t.Fatal(err)
	}
	if err := tg.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	want := "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
	if diff := cmp.Diff(want, save(t, tg)); diff != "" {
		t.Errorf("after Install and Remove (-want +got):\n%s", diff)
	}
}

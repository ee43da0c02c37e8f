package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotCaptured is returned by Validate when capture is not in place. A
// sidecar that gets it must not serve.
var ErrNotCaptured = errors.New("transparent capture is not in place")

// Probe is the connection Validate makes to prove outbound capture works.
type Probe struct {
	// Addr is an IPv4 address outside loopback with a route from the
	// namespace (a default route will do), and a port that is captured.
	// DefaultProbeAddr if unset.
	Addr netip.AddrPort
	// UID is the user the probe connection is made as (its socket's owner,
	// set with setfsuid on the probe's own thread, which needs CAP_SETUID);
	// 0 means the caller's own user. It must not be the proxy's: the proxy's
	// traffic is exempt, so a probe as the proxy proves nothing.
	UID int
	// Timeout bounds the probe; DefaultProbeTimeout if unset.
	Timeout time.Duration
}

// Validate proves that cfg's capture is in place in t, and returns an error
// wrapping ErrNotCaptured if it is not:
//
//  1. the nat table holds meshward's chains with exactly cfg's rules, and
//     the jumps to them are the first rules of PREROUTING and OUTPUT;
//  2. a connection made as a user other than the proxy's to p.Addr lands on
//     a listener Validate binds on 127.0.0.1:OutboundPort, where the
//     outbound redirect points (as linkerd-network-validator does).
//
// Inbound capture cannot be probed from inside the namespace (locally made
// connections never pass PREROUTING); step 1 checks its rules. Run Validate
// before the sidecar binds its outbound port, with CAP_NET_ADMIN (to read
// the rules).
func (t Target) Validate(ctx context.Context, cfg Config, p Probe) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if p.Addr == (netip.AddrPort{}) {
		p.Addr = DefaultProbeAddr
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultProbeTimeout
	}
	if err := p.check(cfg); err != nil {
		return err
	}
	dump, err := t.Save(ctx)
	if err != nil {
		return fmt.Errorf("validate capture: %w", err)
	}
	if err := checkRules(cfg, parseNat(dump)); err != nil {
		return fmt.Errorf("validate capture: %w: %w", ErrNotCaptured, err)
	}
	if err := t.probe(ctx, cfg, p); err != nil {
		return fmt.Errorf("validate capture: %w: %w", ErrNotCaptured, err)
	}
	return nil
}

func (p Probe) check(cfg Config) error {
	a := p.Addr.Addr()
	switch {
	case !a.Is4() || a.IsLoopback() || a.IsUnspecified() || p.Addr.Port() == 0:
		return &FieldError{Field: "Probe.Addr", Value: p.Addr.String(), Reason: "must be an IPv4 address outside loopback, with a port"}
	case slices.Contains(cfg.ExcludeOutboundPorts, int(p.Addr.Port())):
		return &FieldError{Field: "Probe.Addr", Value: p.Addr.String(), Reason: "its port is excluded from outbound capture"}
	case p.UID < 0 || p.UID > maxUID:
		return &FieldError{Field: "Probe.UID", Value: strconv.Itoa(p.UID), Reason: "must be a user ID, or 0 for the caller's"}
	}
	for _, c := range cfg.ExcludeOutboundCIDRs {
		if c.Contains(a) {
			return &FieldError{Field: "Probe.Addr", Value: p.Addr.String(), Reason: "is in an excluded outbound CIDR " + c.String()}
		}
	}
	uid := p.UID
	if uid == 0 {
		uid = os.Geteuid()
	}
	if uid == cfg.ProxyUID || (cfg.ProxyGID != 0 && p.UID == 0 && os.Getegid() == cfg.ProxyGID) {
		return &FieldError{Field: "Probe.UID", Value: strconv.Itoa(uid), Reason: "is the proxy's user (or group), whose traffic is exempt from capture by design, so its probe proves nothing; run validate as another user or give a probe UID"}
	}
	return nil
}

// checkRules compares the installed nat rules with the rendered ones.
func checkRules(cfg Config, nat natTable) error {
	want := rules(cfg)
	for _, chain := range []string{ChainInbound, ChainOutbound} {
		if !slices.Contains(nat.chains, chain) {
			return fmt.Errorf("the nat table has no %s chain", chain)
		}
		w, g := inChain(want, chain), inChain(nat.rules, chain)
		if !slices.Equal(w, g) {
			return fmt.Errorf("the rules in %s differ from the configured ones:\n%s", chain, diffRules(w, g))
		}
	}
	for _, j := range jumps() {
		if nat.first[j.chain] != j {
			return fmt.Errorf("%s does not start with %q", j.chain, j.String())
		}
	}
	return nil
}

func inChain(rs []rule, chain string) []rule {
	var out []rule
	for _, r := range rs {
		if r.chain == chain {
			out = append(out, r)
		}
	}
	return out
}

func diffRules(want, got []rule) string {
	var b strings.Builder
	for _, r := range want {
		if !slices.Contains(got, r) {
			fmt.Fprintf(&b, "  missing: %s\n", r)
		}
	}
	for _, r := range got {
		if !slices.Contains(want, r) {
			fmt.Fprintf(&b, "  unexpected: %s\n", r)
		}
	}
	if b.Len() == 0 {
		b.WriteString("  same rules, other order\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// probe listens where the outbound redirect points and connects, as a user
// other than the proxy's, to an address outside loopback: only a redirected
// connection reads the listener's random nonce.
func (t Target) probe(ctx context.Context, cfg Config, p Probe) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	want := hex.EncodeToString(nonce[:])
	return InNetNS(t.NetNS, func() error {
		at := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.OutboundPort))
		ln, err := net.Listen("tcp4", at)
		if err != nil {
			return fmt.Errorf("listen on %s, where the outbound redirect points (validate before the sidecar binds it): %w", at, err)
		}
		defer ln.Close()
		go serveNonce(ln, want)
		if p.UID != 0 {
			if err := unix.Setfsuid(p.UID); err != nil {
				return fmt.Errorf("probe as uid %d: %w", p.UID, err)
			}
			if got, _ := unix.SetfsuidRetUid(-1); got != p.UID {
				return fmt.Errorf("probe as uid %d: setfsuid refused (needs CAP_SETUID)", p.UID)
			}
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", p.Addr.String())
		if err != nil {
			return fmt.Errorf("probe connection to %s did not reach the outbound capture port %d: %w", p.Addr, cfg.OutboundPort, err)
		}
		defer c.Close()
		deadline, _ := ctx.Deadline()
		_ = c.SetDeadline(deadline)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			return fmt.Errorf("probe connection to %s was answered by something other than the outbound capture port %d", p.Addr, cfg.OutboundPort)
		}
		return nil
	})
}

func serveNonce(ln net.Listener, nonce string) {
	for range 16 { // bounded: the probe needs one connection
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, nonce)
		_ = c.Close()
	}
}

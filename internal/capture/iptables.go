package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Target is where capture rules go: a named network namespace
// (/run/netns/NAME, as `ip netns` makes them) or, with NetNS empty, the
// caller's own namespace (the host, or a pod's when run as its init step).
type Target struct {
	// NetNS is the name of a network namespace under /run/netns; empty means
	// the caller's own.
	NetNS string
	// IPTables is the iptables variant whose -save and -restore commands are
	// run: "iptables-nft" (the default, as Linkerd's proxy-init uses) or
	// "iptables-legacy".
	IPTables string
}

var netnsName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Check reports an invalid NetNS or IPTables as a *FieldError.
func (t Target) Check() error {
	if t.NetNS != "" && (!netnsName.MatchString(t.NetNS) || strings.Contains(t.NetNS, "..")) {
		return &FieldError{Field: "NetNS", Value: t.NetNS, Reason: "is not a network namespace name (letters, digits, '.', '_', '-')"}
	}
	switch t.IPTables {
	case "", "iptables-nft", "iptables-legacy":
		return nil
	}
	return &FieldError{Field: "IPTables", Value: t.IPTables, Reason: "must be iptables-nft or iptables-legacy"}
}

func (t Target) bin(suffix string) string {
	b := t.IPTables
	if b == "" {
		b = DefaultIPTables
	}
	return b + suffix
}

// command runs name with args in the target namespace (through `ip netns
// exec` for a named one), with stdin, and returns its stdout.
func (t Target) command(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	if err := t.Check(); err != nil {
		return "", err
	}
	name = lookPath(name)
	if t.NetNS != "" {
		args = append([]string{"netns", "exec", t.NetNS, name}, args...)
		name = lookPath("ip")
	}
	cmd := exec.CommandContext(ctx, name, args...) // #nosec G204 -- fixed binaries, checked namespace name
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %w (install the Debian package iptables, and iproute2 for --netns)", name, err)
		}
		return "", fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, msg)
	}
	return stdout.String(), nil
}

// lookPath finds name in PATH or, as root's tools often live there while a
// user's PATH lacks them, in /usr/sbin or /sbin; else it returns name, and
// running it reports it missing.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if fi, err := os.Stat(dir + "/" + name); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return dir + "/" + name
		}
	}
	return name
}

// Save returns iptables-save's dump of every table in the target, without
// the "# Generated/Completed" comment lines (they carry a timestamp), so two
// dumps of the same rules are equal strings.
func (t Target) Save(ctx context.Context) (string, error) {
	out, err := t.command(ctx, "", t.bin("-save"))
	if err != nil {
		return "", fmt.Errorf("save rules: %w", err)
	}
	var b strings.Builder
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String(), nil
}

// Install puts cfg's capture rules in place, in one iptables-restore
// transaction: meshward's chains are flushed and refilled and the jumps to
// them replaced, so installing twice leaves the same rules as once; rules and
// chains that are not meshward's are left alone.
func (t Target) Install(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	dump, err := t.Save(ctx)
	if err != nil {
		return fmt.Errorf("install capture: %w", err)
	}
	if _, err := t.command(ctx, script(cfg, parseNat(dump).jumps), t.bin("-restore"), "--noflush"); err != nil {
		return fmt.Errorf("install capture: %w", err)
	}
	return nil
}

// Remove takes out meshward's chains and the jumps to them, and nothing
// else. It does nothing when there is nothing to take out.
func (t Target) Remove(ctx context.Context) error {
	dump, err := t.Save(ctx)
	if err != nil {
		return fmt.Errorf("remove capture: %w", err)
	}
	s := removeScript(parseNat(dump))
	if s == "" {
		return nil
	}
	if _, err := t.command(ctx, s, t.bin("-restore"), "--noflush"); err != nil {
		return fmt.Errorf("remove capture: %w", err)
	}
	return nil
}

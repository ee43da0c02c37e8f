package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/capture"
)

// captureOptions mirror capture.Config, capture.Target and capture.Probe.
type captureOptions struct {
	netns        string
	iptables     string // nft | legacy
	inboundPort  int
	outboundPort int
	adminPort    int
	proxyUID     int
	proxyGID     int
	inboundPorts []string
	exclInPorts  []string
	exclOutPorts []string
	exclInCIDRs  []string
	exclOutCIDRs []string

	probeAddr    string
	probeUID     int
	probeTimeout time.Duration
	validate     bool // install: validate afterwards
}

// captureFlags names the flag of each capture.Config, Target and Probe
// field, so an invalid field is reported as the flag the user typed.
var captureFlags = map[string]string{
	"InboundPort": "--inbound-port", "OutboundPort": "--outbound-port", "AdminPort": "--admin-port",
	"ProxyUID": "--proxy-uid", "ProxyGID": "--proxy-gid", "InboundPorts": "--inbound-ports",
	"ExcludeInboundPorts": "--exclude-inbound-ports", "ExcludeOutboundPorts": "--exclude-outbound-ports",
	"ExcludeInboundCIDRs": "--exclude-inbound-cidrs", "ExcludeOutboundCIDRs": "--exclude-outbound-cidrs",
	"NetNS": "--netns", "IPTables": "--iptables", "Probe.Addr": "--probe-addr", "Probe.UID": "--probe-uid",
}

// captureErr turns an invalid field into a usage error (exit 2) that names
// its flag; other errors (iptables failed, capture not in place) exit 1.
func captureErr(err error) error {
	var fe *capture.FieldError
	if errors.As(err, &fe) {
		name := fe.Field
		if f, ok := captureFlags[fe.Field]; ok {
			name = f
		}
		return usageErrf("%s %s: %s", name, fe.Value, fe.Reason)
	}
	return err
}

func (o *captureOptions) config() (capture.Config, error) {
	cfg := capture.Config{InboundPort: o.inboundPort, OutboundPort: o.outboundPort, AdminPort: o.adminPort, ProxyUID: o.proxyUID, ProxyGID: o.proxyGID}
	var err error
	lists := []struct {
		field string
		in    []string
		out   *[]int
	}{{"InboundPorts", o.inboundPorts, &cfg.InboundPorts}, {"ExcludeInboundPorts", o.exclInPorts, &cfg.ExcludeInboundPorts}, {"ExcludeOutboundPorts", o.exclOutPorts, &cfg.ExcludeOutboundPorts}}
	for _, l := range lists {
		if *l.out, err = capture.ParsePorts(l.field, l.in); err != nil {
			return cfg, captureErr(err)
		}
	}
	if cfg.ExcludeInboundCIDRs, err = capture.ParseCIDRs("ExcludeInboundCIDRs", o.exclInCIDRs); err != nil {
		return cfg, captureErr(err)
	}
	if cfg.ExcludeOutboundCIDRs, err = capture.ParseCIDRs("ExcludeOutboundCIDRs", o.exclOutCIDRs); err != nil {
		return cfg, captureErr(err)
	}
	return cfg, captureErr(cfg.Validate())
}

func (o *captureOptions) target() (capture.Target, error) {
	t := capture.Target{NetNS: o.netns}
	switch o.iptables {
	case "nft":
		t.IPTables = "iptables-nft"
	case "legacy":
		t.IPTables = "iptables-legacy"
	default:
		return t, usageErrf("--iptables %s: must be nft or legacy", o.iptables)
	}
	return t, captureErr(t.Check())
}

func (o *captureOptions) probe() (capture.Probe, error) {
	p := capture.Probe{UID: o.probeUID, Timeout: o.probeTimeout}
	if o.probeAddr != "" {
		a, err := netip.ParseAddrPort(o.probeAddr)
		if err != nil {
			return p, usageErrf("--probe-addr %s: must be IPv4:PORT, such as %s", o.probeAddr, capture.DefaultProbeAddr)
		}
		p.Addr = a
	}
	if o.probeTimeout <= 0 {
		return p, usageErrf("--probe-timeout must be positive")
	}
	return p, nil
}

func (o *captureOptions) addConfigFlags(c *cobra.Command) {
	f := c.Flags()
	f.IntVar(&o.inboundPort, "inbound-port", 0, "the sidecar's mTLS inbound port: inbound TCP to the app is redirected here (required)")
	f.IntVar(&o.outboundPort, "outbound-port", 0, "the sidecar's outbound capture port: the app's outbound TCP is redirected here (required)")
	f.IntVar(&o.adminPort, "admin-port", 0, "the sidecar's admin port, never redirected (0: none)")
	f.IntVar(&o.proxyUID, "proxy-uid", 0, "the user the sidecar runs as; its traffic is exempt, so the app must not run as it (required, not 0)")
	f.IntVar(&o.proxyGID, "proxy-gid", 0, "also exempt this group (0: none)")
	f.StringSliceVar(&o.inboundPorts, "inbound-ports", nil, "app ports whose inbound TCP is redirected (default: every port)")
	f.StringSliceVar(&o.exclInPorts, "exclude-inbound-ports", nil, "destination ports whose inbound TCP is left alone")
	f.StringSliceVar(&o.exclOutPorts, "exclude-outbound-ports", nil, "destination ports whose outbound TCP is left alone")
	f.StringSliceVar(&o.exclInCIDRs, "exclude-inbound-cidrs", nil, "source networks whose inbound traffic is left alone")
	f.StringSliceVar(&o.exclOutCIDRs, "exclude-outbound-cidrs", nil, "destination networks whose outbound traffic is left alone")
}

func (o *captureOptions) addTargetFlags(c *cobra.Command) {
	c.Flags().StringVar(&o.netns, "netns", "", "act in this named network namespace (/run/netns/NAME) instead of the current one")
	c.Flags().StringVar(&o.iptables, "iptables", "nft", "iptables variant: nft (iptables-nft) or legacy")
}

func (o *captureOptions) addProbeFlags(c *cobra.Command) {
	c.Flags().StringVar(&o.probeAddr, "probe-addr", "", "IPv4:PORT outside loopback, routed from the namespace, the probe connects to (default "+capture.DefaultProbeAddr.String()+")")
	c.Flags().IntVar(&o.probeUID, "probe-uid", 0, "make the probe connection as this user (needs CAP_SETUID; 0: the caller's); never the proxy's")
	c.Flags().DurationVar(&o.probeTimeout, "probe-timeout", capture.DefaultProbeTimeout, "how long the probe may take")
}

const captureExampleFlags = "--inbound-port 4143 --outbound-port 4140 --admin-port 4191 --proxy-uid 2102"

func newCaptureCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Transparent capture rules for a network namespace or host (iptables-nft)",
		Long: `Transparent capture redirects inbound TCP to the app's ports to the sidecar's
mTLS inbound port and the app's outbound TCP to the sidecar's outbound capture
port, in meshward's own nat chains (MESHWARD_PREROUTING, MESHWARD_OUTPUT).
The sidecar's own traffic is exempt by its UID; loopback, the sidecar's admin
and inbound ports and the excluded ports and CIDRs are left alone. The
Kubernetes init step runs the same code. See docs/capture.md.`,
		Example: `  meshward capture render ` + captureExampleFlags + `
  meshward capture install --netns pod1 ` + captureExampleFlags + `
  meshward capture remove --netns pod1`,
	}
	cmd.AddCommand(newCaptureRenderCmd(), newCaptureInstallCmd(), newCaptureRemoveCmd(), newCaptureValidateCmd())
	return cmd
}

func newCaptureRenderCmd() *cobra.Command {
	o := &captureOptions{}
	c := &cobra.Command{
		Use:   "render",
		Short: "Print the capture rules as iptables-restore input, touching nothing",
		Example: `  meshward capture render ` + captureExampleFlags + `
  meshward capture render ` + captureExampleFlags + ` --inbound-ports 8080 --exclude-outbound-cidrs 169.254.169.254/32
  meshward capture render ` + captureExampleFlags + ` | iptables-nft-restore --noflush`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config()
			if err != nil {
				return err
			}
			text, err := capture.Render(cfg)
			if err != nil {
				return captureErr(err)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), text)
			return err
		},
	}
	o.addConfigFlags(c)
	return c
}

func newCaptureInstallCmd() *cobra.Command {
	o := &captureOptions{}
	c := &cobra.Command{
		Use:   "install",
		Short: "Install (or replace) the capture rules, then prove they work",
		Long: `Install applies the rules with iptables-nft-restore --noflush in one
transaction, replacing meshward's chains and jumps and no one else's, so it
may run any number of times. Then it validates them as 'capture validate'
does, and exits 1 if capture is not in place. Needs root (CAP_NET_ADMIN).`,
		Example: `  meshward capture install ` + captureExampleFlags + `
  meshward capture install --netns pod1 ` + captureExampleFlags + ` --exclude-outbound-ports 5432`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapture(cmd.Context(), o, cmd.OutOrStdout(), true, o.validate)
		},
	}
	o.addConfigFlags(c)
	o.addTargetFlags(c)
	o.addProbeFlags(c)
	c.Flags().BoolVar(&o.validate, "validate", true, "after installing, prove capture works (before the sidecar binds its outbound port)")
	return c
}

func newCaptureValidateCmd() *cobra.Command {
	o := &captureOptions{}
	c := &cobra.Command{
		Use:   "validate",
		Short: "Prove capture is in place; exit 1 if it is not",
		Long: `Validate checks that meshward's chains hold exactly the configured rules and
come first in PREROUTING and OUTPUT, then listens on 127.0.0.1:<outbound-port>
and connects, as a user other than the proxy's, to --probe-addr: only a
redirected connection reaches the listener. Run it before the sidecar binds
its outbound port; a sidecar must not serve when it fails.`,
		Example: `  meshward capture validate --netns pod1 ` + captureExampleFlags + `
  meshward capture validate ` + captureExampleFlags + ` --probe-addr 10.96.0.1:443 --probe-uid 65534`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCapture(cmd.Context(), o, cmd.OutOrStdout(), false, true)
		},
	}
	o.addConfigFlags(c)
	o.addTargetFlags(c)
	o.addProbeFlags(c)
	return c
}

func newCaptureRemoveCmd() *cobra.Command {
	o := &captureOptions{}
	c := &cobra.Command{
		Use:   "remove",
		Short: "Remove meshward's capture rules and nothing else",
		Example: `  meshward capture remove
  meshward capture remove --netns pod1`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.target()
			if err != nil {
				return err
			}
			if err := t.Remove(cmd.Context()); err != nil {
				return captureErr(err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "capture rules removed")
			return err
		},
	}
	o.addTargetFlags(c)
	return c
}

// runCapture installs and/or validates. Every input is checked before
// anything is changed.
func runCapture(ctx context.Context, o *captureOptions, stdout io.Writer, install, validate bool) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	t, err := o.target()
	if err != nil {
		return err
	}
	p, err := o.probe()
	if err != nil {
		return err
	}
	if install {
		if err := t.Install(ctx, cfg); err != nil {
			return captureErr(err)
		}
		fmt.Fprintln(stdout, "capture rules installed")
	}
	if validate {
		if err := t.Validate(ctx, cfg, p); err != nil {
			return captureErr(err)
		}
		fmt.Fprintln(stdout, "capture validated: outbound TCP reaches port", cfg.OutboundPort)
	}
	return nil
}

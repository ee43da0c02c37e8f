package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/probe"
	"meshward.dev/meshward/internal/scan"
)

// probeOptions are the flags of `meshward probe`.
type probeOptions struct {
	target     string
	output     string
	failOn     string
	timeout    time.Duration
	bundle     string
	clientCert string
	clientKey  string

	now string // evaluation time (RFC 3339), hidden, for tests and replays; now when empty
	g   *globalOptions
}

func newProbeCmd(g *globalOptions) *cobra.Command {
	o := &probeOptions{g: g}
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "Inspect a live endpoint as an attacker would",
		Long: `probe connects to HOST:PORT the way an attacker would and reports what it
accepts: plaintext HTTP, raw plaintext bytes, TLS without a client certificate,
each TLS version from 1.0 to 1.3 (SSLv3 cannot be offered by Go's crypto/tls
and is not tested), each TLS 1.0-1.2 cipher suite one at a time, and the
certificate chain it presents (validity, lifetime, key, signature algorithm,
SPIFFE ID and trust domain, and whether it verifies against --bundle).

Findings use the format and exit codes of 'meshward scan': exit 1 when a
finding reaches --fail-on, 2 for usage errors. See docs/probe.md for the rules.`,
		Example: `  # is this sidecar port strict mTLS?
  meshward probe 127.0.0.1:15001 --bundle .meshward/admin/bundle.pem

  # also try a valid mesh identity, and print JSON
  meshward probe payments.shop.svc:8443 --client-cert svid.pem --client-key svid.key -o json

  # fail a CI job only on high or critical findings
  meshward probe 10.0.0.12:443 --fail-on high`,
		Args:         exactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = args[0]
			return runProbe(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addOutputFlag(cmd, &o.output)
	f.StringVar(&o.failOn, "fail-on", "info", "exit 1 when a finding is at or above this severity (critical, high, medium, low, info) or never (none)")
	f.DurationVar(&o.timeout, "timeout", probe.DefaultTimeout, "bound on each connect, handshake and read")
	f.StringVar(&o.bundle, "bundle", "", "PEM file of trust anchors the presented chain must verify against")
	f.StringVar(&o.clientCert, "client-cert", "", "PEM certificate chain (e.g. an X.509-SVID) to present in an extra handshake")
	f.StringVar(&o.clientKey, "client-key", "", "PEM private key for --client-cert")
	f.StringVar(&o.now, "now", "", "evaluation time for certificate checks (RFC 3339)")
	_ = f.MarkHidden("now")
	return cmd
}

// probeInputs is what validate turns the flags into.
type probeInputs struct {
	cfg       probe.Config
	threshold scan.Severity
	never     bool // --fail-on none
}

func (o *probeOptions) validate() (probeInputs, error) {
	var in probeInputs
	if err := checkOutput(o.output); err != nil {
		return in, err
	}
	t, err := probe.ParseTarget(o.target)
	if err != nil {
		return in, usageErr(err)
	}
	in.cfg.Target = t
	if o.failOn == "none" {
		in.never = true
	} else if in.threshold, err = scan.ParseSeverity(o.failOn); err != nil {
		return in, usageErrf("--fail-on: %v (or none)", err)
	}
	if o.timeout <= 0 || o.timeout > 5*time.Minute {
		return in, usageErrf("--timeout: %s is out of range (more than 0, at most 5m)", o.timeout)
	}
	in.cfg.Timeout = o.timeout
	if o.bundle != "" {
		data, err := os.ReadFile(o.bundle)
		if err != nil {
			return in, usageErrf("--bundle: %w", err)
		}
		certs, err := probe.ParseBundle(o.bundle, data)
		if err != nil {
			return in, usageErrf("--bundle: %w", err)
		}
		in.cfg.Bundle, in.cfg.BundleName = certs, o.bundle
	}
	if (o.clientCert == "") != (o.clientKey == "") {
		return in, usageErr(errors.New("--client-cert and --client-key go together"))
	}
	if o.clientCert != "" {
		pair, err := tls.LoadX509KeyPair(o.clientCert, o.clientKey)
		if err != nil {
			return in, usageErrf("--client-cert %s / --client-key %s: %w", o.clientCert, o.clientKey, err)
		}
		in.cfg.ClientCert = &pair
	}
	if o.now != "" {
		at, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return in, usageErrf("--now: %q is not an RFC 3339 time", o.now)
		}
		in.cfg.Now = func() time.Time { return at }
	}
	return in, nil
}

// runProbe probes, prints the report and maps findings to the exit code.
func runProbe(ctx context.Context, o *probeOptions, stdout, stderr io.Writer) error {
	in, err := o.validate()
	if err != nil {
		return err
	}
	if o.g != nil {
		log, err := o.g.logger(stderr)
		if err != nil {
			return err
		}
		in.cfg.Logger = log
	}
	res, err := probe.Run(ctx, in.cfg)
	if err != nil {
		return err
	}
	findings := probe.Evaluate(res)
	report := probe.NewReport(res, findings)
	if o.output != formatText {
		err = writeOutput(stdout, o.output, newProbeView(report))
	} else {
		err = probe.WriteText(stdout, report)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if in.never {
		return nil
	}
	for _, f := range findings {
		if f.Severity >= in.threshold {
			return errFailed
		}
	}
	return nil
}

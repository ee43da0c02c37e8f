// Package cli wires meshward's cobra commands. It holds no logic of its own:
// each command parses flags into an options struct, validates it and calls
// the component that does the work.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Execute runs the meshward command line with args and returns the error that
// decides the exit code (see ExitCode).
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && err.Error() != "" {
		fmt.Fprintf(stderr, "meshward: %v\n", err)
	}
	return err
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "meshward",
		Short: "A secure-by-default service mesh in one binary",
		Long: `meshward gives every service a SPIFFE identity, carries all service-to-service
traffic over mutual TLS, rotates certificates by itself, denies what no policy
allows, and scans Istio, Linkerd and Consul setups for the mistakes attackers
look for.`,
		Example: `  # run the bundled demo shop (control plane, sidecars, apps) in the foreground
  meshward up --demo

  # scan Kubernetes manifests for mesh misconfigurations
  meshward scan ./manifests --fail-on high`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = readBuildInfo().short()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	g.addFlags(root)

	root.AddCommand(
		newControlCmd(g),
		newTokenCmd(g),
		newCACmd(g),
		newIdentityCmd(g),
		newProxyCmd(g),
		newPolicyCmd(g),
		newScanCmd(g),
		newProbeCmd(g),
		newUpCmd(g),
		newStatusCmd(g),
		newCheckCmd(g),
		newAuditCmd(g),
		newTapCmd(g),
		newDashboardCmd(g),
		newCaptureCmd(g),
		newVersionCmd(),
		newCompletionCmd(),
	)
	for _, c := range newHiddenCmds(g) {
		root.AddCommand(c)
	}
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command group (meshward itself,
// policy, ca, ...) answer an unknown subcommand with a usage error (exit 2)
// and a suggestion, and a group called with no subcommand with one too.
// Left to cobra, the root returns a plain error (exit 1) and a group prints
// its help and exits 0, so a typo in a script would pass.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || (c.Runnable() && c.Args != nil) {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrf("%s needs a subcommand; see '%s --help'", cmd.CommandPath(), cmd.CommandPath())
		}
		hint := ""
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageErrf("unknown command %q for %q%s; see '%s --help'", args[0], cmd.CommandPath(), hint, cmd.CommandPath())
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrf("%s takes %d argument(s), got %d; see '%s --help'", cmd.CommandPath(), n, len(args), cmd.CommandPath())
		}
		return nil
	}
}

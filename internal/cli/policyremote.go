package cli

import "github.com/spf13/cobra"

// policyRemoteCmds are the `policy` subcommands that talk to the control
// plane (apply, history, rollback); newPolicyCmd adds them.
func policyRemoteCmds(_ *globalOptions) []*cobra.Command { return nil }

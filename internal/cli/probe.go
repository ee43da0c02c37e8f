package cli

import "github.com/spf13/cobra"

// newProbeCmd is a placeholder until its issue lands.
func newProbeCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "probe",
		Short: "inspect a live endpoint as an attacker would (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

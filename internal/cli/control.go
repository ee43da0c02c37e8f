package cli

import "github.com/spf13/cobra"

// newControlCmd is a placeholder until its issue lands.
func newControlCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "control",
		Short: "run the control plane (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

package cli

import "github.com/spf13/cobra"

// newUpCmd is a placeholder until its issue lands.
func newUpCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "run a whole local mesh in the foreground (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

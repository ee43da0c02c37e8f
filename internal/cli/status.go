package cli

import "github.com/spf13/cobra"

// newStatusCmd is a placeholder until its issue lands.
func newStatusCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "show what the local mesh runs (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

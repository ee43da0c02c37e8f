package cli

import "github.com/spf13/cobra"

// newTokenCmd is a placeholder until its issue lands.
func newTokenCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "mint join tokens (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

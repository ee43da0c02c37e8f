package cli

import "github.com/spf13/cobra"

// newPolicyCmd is a placeholder until its issue lands.
func newPolicyCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "policy",
		Short: "lint, test, diff and apply access policies (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

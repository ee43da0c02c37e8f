package cli

import "github.com/spf13/cobra"

// newIdentityCmd is a placeholder until its issue lands.
func newIdentityCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "identity",
		Short: "fetch, ban and unban identities (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

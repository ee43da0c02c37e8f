package cli

import "github.com/spf13/cobra"

// newCACmd is a placeholder until its issue lands.
func newCACmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "ca",
		Short: "inspect and rotate the certificate authority (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

package cli

import "github.com/spf13/cobra"

// newProxyCmd is a placeholder until its issue lands.
func newProxyCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "proxy",
		Short: "run one sidecar (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

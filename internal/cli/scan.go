package cli

import "github.com/spf13/cobra"

// newScanCmd is a placeholder until its issue lands.
func newScanCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "scan",
		Short: "find misconfigurations in mesh manifests (not yet implemented)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrf("%s is not implemented yet", cmd.CommandPath())
		},
	}
}

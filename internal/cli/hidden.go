package cli

import "github.com/spf13/cobra"

// newHiddenCmds returns commands that exist for meshward's own use (the demo
// apps started by `up --demo`), kept out of --help.
func newHiddenCmds(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{newDemoAppCmd(g)}
}

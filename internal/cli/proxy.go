package cli

import (
	"errors"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/sidecar"
)

func newProxyCmd(g *globalOptions) *cobra.Command {
	cmd := sidecar.Command(func(w io.Writer) (*slog.Logger, error) { return g.logger(w) })
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		if errors.Is(err, sidecar.ErrUsage) {
			return usageErr(err)
		}
		return err
	}
	return cmd
}

package cli

import (
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/observe"
)

// globalOptions are the persistent flags every command shares.
type globalOptions struct {
	logFormat string // json | text
	logLevel  string // debug | info | warn | error
}

func (g *globalOptions) addFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// logger builds the process logger from the global flags.
func (g *globalOptions) logger(w io.Writer) (*slog.Logger, error) {
	l, err := observe.NewLogger(w, g.logFormat, g.logLevel)
	if err != nil {
		return nil, usageErr(err)
	}
	return l, nil
}

// isTerminal reports whether w is a terminal, so colors and progress are only
// written to people, never to pipes and files.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}

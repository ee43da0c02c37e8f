// Command meshward-proxy is the sidecar alone: the same code as `meshward
// proxy`, without the commands a sidecar never runs (the scanner and its
// Kubernetes client, the CLI). It is smaller and needs less memory per
// sidecar (see docs/benchmarks.md); `meshward up` uses it when it sits next
// to the meshward binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/sidecar"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var format, level string
	cmd := sidecar.Command(func(w io.Writer) (*slog.Logger, error) { return observe.NewLogger(w, format, level) })
	cmd.Use = "meshward-proxy"
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", sidecar.ErrUsage, err) })
	cmd.Flags().StringVar(&format, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshward-proxy: %v\n", err)
		if errors.Is(err, sidecar.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

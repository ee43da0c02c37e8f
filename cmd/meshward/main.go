// Command meshward is the single binary of the meshward service mesh.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"meshward.dev/meshward/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}

package sidecar

import (
	"io"
	"log/slog"
	"testing"
)

// TestTelemetryFlagsOverrideOnlyWhenGiven: a flag not on the command line
// leaves the MeshConfig's switch in force (nil), one given overrides it,
// whichever value it has.
func TestTelemetryFlagsOverrideOnlyWhenGiven(t *testing.T) {
	cmd := Command(func(io.Writer) (*slog.Logger, error) { return slog.New(slog.DiscardHandler), nil })
	if err := cmd.ParseFlags([]string{"--access-log", "--tracing=true"}); err != nil {
		t.Fatal(err)
	}
	var o telemetryFlags
	o.accessLog, _ = cmd.Flags().GetBool("access-log")
	o.metrics, _ = cmd.Flags().GetBool("metrics")
	o.tracing, _ = cmd.Flags().GetBool("tracing")
	got := o.overrides(cmd.Flags())
	if got.AccessLog == nil || !*got.AccessLog {
		t.Errorf("--access-log: override %v, want true", got.AccessLog)
	}
	if got.Tracing == nil || !*got.Tracing {
		t.Errorf("--tracing=true (the default value, given): override %v, want true", got.Tracing)
	}
	if got.Metrics != nil {
		t.Errorf("--metrics not given: override %v, want none (the MeshConfig decides)", *got.Metrics)
	}
}

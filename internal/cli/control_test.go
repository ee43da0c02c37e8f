package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestControlRefusesUnsafeAndBusyAddresses: the unauthenticated dashboard
// is refused beyond loopback without --insecure-dashboard, and an address
// another process holds is a usage error (exit 2) that names the flag and
// says what to do, before anything is served.
func TestControlRefusesUnsafeAndBusyAddresses(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // parallel subtests run after this function returns
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"dashboard beyond loopback", []string{"--dashboard", "0.0.0.0:0"}, []string{"--dashboard", "not a loopback address", "--insecure-dashboard"}},
		{"listen address in use", []string{"--listen", busy.Addr().String(), "--dashboard", ""}, []string{"--listen " + busy.Addr().String(), "address already in use", "meshward status"}},
		{"dashboard address in use", []string{"--listen", "127.0.0.1:0", "--dashboard", busy.Addr().String()}, []string{"--dashboard " + busy.Addr().String(), "address already in use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			args := append([]string{"control", "--data-dir", t.TempDir()}, tc.args...)
			err := Execute(ctx, args, &bytes.Buffer{}, &stderr)
			if ctx.Err() != nil {
				t.Fatal("the control plane started instead of refusing")
			}
			if code := ExitCode(err); code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not say %q", stderr.String(), w)
				}
			}
		})
	}
}

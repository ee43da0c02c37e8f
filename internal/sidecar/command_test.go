package sidecar

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBadFlagsKeepTheJoinToken: a sidecar started with a bad flag refuses
// (a usage error naming the flag) before it contacts the control plane, so
// its single-use join token is not spent. The control address is a real
// listener that counts connections.
func TestBadFlagsKeepTheJoinToken(t *testing.T) {
	t.Setenv("MESHWARD_TOKEN", "mwt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA."+strings.Repeat("0", 64)) // well-formed: a sidecar would dial with it
	t.Setenv("GODEBUG", "schedtrace=0")                                                                     // no gotune re-exec of the test binary
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var contacted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			contacted.Add(1)
			c.Close()
		}
	}()
	busy, err := net.Listen("tcp", "127.0.0.1:0") // a stranger on a port the sidecar wants
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notPEM := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(notPEM, []byte("not a bundle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--inbound", busy.Addr().String()}, "inbound " + busy.Addr().String() + ": already in use"},
		{[]string{"--upstream", "catalog=" + busy.Addr().String()}, "upstreams[0].listen " + busy.Addr().String() + ": already in use"},
		{[]string{"--protocol", "htp"}, "protocol"},
		{[]string{"--upstream", "catalog=10.1.2.3:9001"}, "upstreams[0].listen"},
		{[]string{"--app", "10.1.2.3:8080"}, "app"},
		{[]string{"--admin", "0.0.0.0:15000"}, "--admin"},
		{[]string{"--http-proxy", "192.0.2.1:3128"}, "httpProxy"},
		{[]string{"--bundle", notPEM + ".missing"}, "--bundle"},
		{[]string{"--bundle", notPEM}, "--bundle " + notPEM + ": data that is not PEM"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"--service", "web", "--control", ln.Addr().String(), "--inbound", "127.0.0.1:0",
				"--app", "127.0.0.1:8080", "--admin", "127.0.0.1:0"}, tc.args...)
			cmd := Command(func(io.Writer) (*slog.Logger, error) { return slog.New(slog.DiscardHandler), nil })
			var stderr bytes.Buffer
			cmd.SetArgs(args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(&stderr)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil || !(errors.Is(err, ErrUsage) || errors.Is(err, ErrConfig)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error naming %s", err, tc.want)
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // let a stray dial land, if there was one
	if n := contacted.Load(); n != 0 {
		t.Fatalf("the control plane was contacted %d times: a join token would have been spent on a bad flag", n)
	}
}

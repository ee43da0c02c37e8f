package sidecar

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/testpki"
)

// TestBundleFlagAuthenticatesTheControlPlane: with --bundle, a control
// plane (a TLS server with a genuine-looking control plane certificate of
// another CA) is refused because it does not chain to the bundle, before
// the join token is sent.
func TestBundleFlagAuthenticatesTheControlPlane(t *testing.T) {
	t.Setenv("MESHWARD_TOKEN", "mwt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA."+strings.Repeat("0", 64))
	t.Setenv("GODEBUG", "schedtrace=0") // no gotune re-exec of the test binary
	rogue := testpki.NewCA(t, "example.org").Intermediate(t)
	cert := rogue.TLSCert(t, testpki.Leaf{URIs: []*url.URL{spiffeid.RequireFromString("spiffe://example.org/meshward/control").URL()}})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, testpki.PEM(testpki.NewCA(t, "example.org").Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := Command(func(io.Writer) (*slog.Logger, error) { return slog.New(slog.DiscardHandler), nil })
	cmd.SetArgs([]string{"--service", "web", "--control", ln.Addr().String(), "--inbound", "127.0.0.1:0", "--app", "127.0.0.1:8080", "--admin", "127.0.0.1:0", "--bundle", bundle})
	var stderr bytes.Buffer
	cmd.SetOut(io.Discard)
	cmd.SetErr(&stderr)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "does not chain to the given bundle") {
		t.Fatalf("err = %v, want the control plane refused for not chaining to --bundle", err)
	}
}

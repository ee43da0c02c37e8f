package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meshward.dev/meshward/internal/testpki"
)

func runProbeArgs(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(append([]string{"probe", "--timeout", "10s"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return out.String(), errb.String() + msg, ExitCode(err)
}

// probeFixture is a strict mTLS server (TLS 1.3, SVID, client certificate
// required), its bundle file, and a valid client SVID on disk.
type probeFixture struct {
	mtls, plain, noAuth string // HOST:PORT
	bundle, cert, key   string // files
	notBefore           time.Time
	dir                 string
}

func newProbeFixture(t *testing.T) probeFixture {
	t.Helper()
	dir := t.TempDir()
	root := testpki.NewCA(t, "cli.test")
	server := root.SVID(t, "spiffe://cli.test/ns/default/sa/api")
	client := root.SVID(t, "spiffe://cli.test/ns/default/sa/web")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(client.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f := probeFixture{
		bundle:    write("bundle.pem", testpki.PEM(root.Cert)),
		cert:      write("client.pem", testpki.PEM(client.Certificates...)),
		key:       write("client.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		notBefore: server.Certificates[0].NotBefore,
		dir:       dir,
	}
	tc := tls.Certificate{PrivateKey: server.PrivateKey, Leaf: server.Certificates[0]}
	for _, c := range server.Certificates {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	f.mtls = serveTLS(t, &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tc},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: root.Pool(),
	})
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") }))
	t.Cleanup(plain.Close)
	f.plain = plain.Listener.Addr().String()
	f.noAuth = serveTLS(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tc}})
	return f
}

// serveTLS handshakes each connection, answers "ok" to anything, closes.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				buf := make([]byte, 256)
				if _, err := tc.Read(buf); err == nil {
					_, _ = io.WriteString(tc, "ok\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProbeCommand(t *testing.T) {
	t.Parallel()
	f := newProbeFixture(t)
	now := f.notBefore.Add(time.Hour).UTC().Format(time.RFC3339)
	badBundle := filepath.Join(f.dir, "bad.pem")
	if err := os.WriteFile(badBundle, []byte("# roots\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr/error
	}{
		{"strict mTLS is clean", []string{f.mtls, "--bundle", f.bundle, "--now", now}, 0, "Findings\n  none", ""},
		{"valid identity accepted", []string{f.mtls, "--client-cert", f.cert, "--client-key", f.key, "--now", now}, 0, "ACCEPTED - handshake completed with the client certificate", ""},
		{"plaintext fails", []string{f.plain}, 1, "CRITICAL MW-PROBE-001  mtls-disabled  Endpoint " + f.plain, ""},
		{"plaintext json", []string{f.plain, "-o", "json"}, 1, `"critical": 1`, ""},
		{"fail-on none", []string{f.plain, "--fail-on", "none"}, 0, "mtls-disabled", ""},
		{"no client auth fails at high", []string{f.noAuth, "--fail-on", "high", "--now", now}, 1, "mtls-permissive", ""},
		{"no client auth passes at critical", []string{f.noAuth, "--fail-on", "critical", "--now", now}, 0, "mtls-permissive", ""},
		{"unreachable", []string{unusedAddr(t)}, 1, "", "connect: connection refused"},
		{"no target", nil, 2, "", "takes 1 argument"},
		{"bad target", []string{"localhost"}, 2, "", "not HOST:PORT"},
		{"bad port", []string{"localhost:99999"}, 2, "", "port"},
		{"bad output", []string{f.mtls, "-o", "sarif"}, 2, "", "-o must be one of"},
		{"bad fail-on", []string{f.mtls, "--fail-on", "urgent"}, 2, "", "--fail-on"},
		{"bad timeout", []string{f.mtls, "--timeout", "0s"}, 2, "", "--timeout"},
		{"bad now", []string{f.mtls, "--now", "yesterday"}, 2, "", "--now"},
		{"missing bundle", []string{f.mtls, "--bundle", filepath.Join(f.dir, "nope.pem")}, 2, "", "nope.pem"},
		{"bad bundle names file and line", []string{f.mtls, "--bundle", badBundle}, 2, "", badBundle + ":2: PEM block type \"PRIVATE KEY\""},
		{"cert without key", []string{f.mtls, "--client-cert", f.cert}, 2, "", "go together"},
		{"key that does not match", []string{f.mtls, "--client-cert", f.bundle, "--client-key", f.key}, 2, "", "--client-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runProbeArgs(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tc.wantOut, out)
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantErr, errOut)
			}
		})
	}
}

func TestProbeJSONShape(t *testing.T) {
	t.Parallel()
	f := newProbeFixture(t)
	out, errOut, code := runProbeArgs(t, f.mtls, "-o", "json", "--bundle", f.bundle, "--now", f.notBefore.Add(time.Hour).UTC().Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
		Summary  map[string]int    `json:"summary"`
		Endpoint struct {
			Target string `json:"target"`
			Chain  []struct {
				SPIFFEID string `json:"spiffe_id"`
			} `json:"chain"`
			Bundle struct {
				Verified bool `json:"verified"`
			} `json:"bundle"`
		} `json:"endpoint"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if doc.Findings == nil || len(doc.Findings) != 0 || len(doc.Summary) != 5 {
		t.Errorf("findings %v summary %v, want [] and five severities", doc.Findings, doc.Summary)
	}
	if doc.Endpoint.Target != f.mtls || len(doc.Endpoint.Chain) == 0 ||
		doc.Endpoint.Chain[0].SPIFFEID != "spiffe://cli.test/ns/default/sa/api" || !doc.Endpoint.Bundle.Verified {
		t.Errorf("endpoint = %+v", doc.Endpoint)
	}
}

func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

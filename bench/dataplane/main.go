// Command dataplane is a bench-only helper for bench/dataplane.sh: it writes
// a throwaway PKI as PEM files, runs one meshward sidecar (internal/proxy)
// from those files, measures handshake rates or burst latencies, or runs
// the tiny upstream app. It is not the product: `meshward proxy` is.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/gotune"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/proxy"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dataplane gencerts DIR | sidecar FLAGS | handshakes FLAGS | bursts FLAGS | app ADDR | otlpsink ADDR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gencerts":
		err = genCerts(os.Args[2])
	case "sidecar":
		err = runSidecar(os.Args[2:])
	case "handshakes":
		err = runHandshakes(os.Args[2:])
	case "bursts":
		err = runBursts(os.Args[2:])
	case "app":
		err = runApp(os.Args[2])
	case "otlpsink":
		err = runOTLPSink(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		os.Exit(1)
	}
}

const trustDomain = "bench.local"

// genCerts writes ca.pem and, for frontend and catalog, <name>.pem (leaf
// only), <name>-chain.pem (leaf), <name>-key.pem, and <name>-bundle.pem
// (leaf + key, for HAProxy). Leaves carry the SPIFFE ID and a DNS name equal
// to the service, so nginx and HAProxy can verify the peer by name.
func genCerts(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{td.ID().URL()},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, name := range []string{"frontend", "catalog"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		id := spiffeid.RequireFromSegments(td, "ns", "default", "sa", name)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{id.URL()}, DNSNames: []string{name},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return err
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		if err := writePEM(filepath.Join(dir, name+".pem"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", kder); err != nil {
			return err
		}
		both := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
		if err := os.WriteFile(filepath.Join(dir, name+"-bundle.pem"), both, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// staticSource serves one SVID and one bundle from files.
type staticSource struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func (s *staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }
func (s *staticSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != s.bundle.TrustDomain() {
		return nil, errors.New("unknown trust domain")
	}
	return s.bundle, nil
}

type allowAll struct{}

func (allowAll) Decide(*policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Rule: "bench-allow-all", Mode: "enforce"}
}

func runSidecar(args []string) error {
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	dir := fs.String("certs", "", "directory written by gencerts")
	service := fs.String("service", "", "frontend or catalog")
	inbound := fs.String("inbound", "", "mTLS listen address (catalog)")
	app := fs.String("app", "", "app address (catalog)")
	listen := fs.String("listen", "", "outbound listen address for upstream catalog (frontend)")
	endpoint := fs.String("endpoint", "", "catalog sidecar address (frontend)")
	accessLog := fs.Bool("access-log", false, "write the access log to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here until exit")
	traceFile := fs.String("trace", "", "write a runtime execution trace here until exit (go tool trace)")
	memProfile := fs.String("memprofile", "", "write an allocation profile of every allocation here at exit (slow; go tool pprof -sample_index=alloc_space)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 1
	}
	// As `meshward proxy` does (internal/gotune); GODEBUG=schedtrace=0 to
	// measure without.
	if err := gotune.Reexec(); err != nil {
		return err
	}
	svid, err := x509svid.Load(filepath.Join(*dir, *service+".pem"), filepath.Join(*dir, *service+"-key.pem"))
	if err != nil {
		return err
	}
	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	bundle, err := x509bundle.Load(td, filepath.Join(*dir, "ca.pem"))
	if err != nil {
		return err
	}
	src := &staticSource{svid: svid, bundle: bundle}
	level := slog.LevelWarn
	if *accessLog {
		level = slog.LevelInfo
	}
	cfg := proxy.Config{
		Service: *service, Namespace: "default", TrustDomain: td, SVID: src, Bundle: src,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if *inbound != "" {
		cfg.InboundAddr, cfg.AppAddr, cfg.AppProtocol = *inbound, *app, proxy.ProtocolHTTP
	}
	if *listen != "" {
		cfg.Upstreams = []proxy.Upstream{{Service: "catalog", Listen: *listen}}
	}
	p, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	p.SetPolicy(allowAll{})
	if *endpoint != "" {
		if err := p.SetEndpoints("catalog", []string{*endpoint}); err != nil {
			return err
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		if err := trace.Start(f); err != nil {
			return err
		}
		defer func() { trace.Stop(); _ = f.Close() }()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return p.Run(ctx)
}

func runApp(addr string) error {
	body := []byte("hello from the bench app\n")
	return serve(addr, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
}

// serve runs h on addr until SIGINT or SIGTERM.
func serve(addr string, h http.HandlerFunc) error {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: h}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runOTLPSink accepts OTLP/HTTP exports and drops them, so the tracing row
// measures what exporting costs the sidecar, not a collector.
func runOTLPSink(addr string) error {
	return serve(addr, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
}

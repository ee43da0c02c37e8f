package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/testpki"
)

const (
	td          = "shop.local"
	frontendID  = "spiffe://shop.local/ns/default/sa/frontend"
	catalogID   = "spiffe://shop.local/ns/default/sa/catalog"
	paymentsID  = "spiffe://shop.local/ns/default/sa/payments"
	testTimeout = 20 * time.Second
)

// deciderFunc adapts a function to Decider.
type deciderFunc func(*policy.Request) policy.Decision

func (f deciderFunc) Decide(r *policy.Request) policy.Decision { return f(r) }

func allowAll() Decider {
	return deciderFunc(func(*policy.Request) policy.Decision {
		return policy.Decision{Allow: true, Policy: "test", Rule: "allow-all", Mode: "enforce"}
	})
}

// mesh is a frontend sidecar (outbound to catalog) and a catalog sidecar
// (inbound to the catalog app), running on loopback.
type mesh struct {
	ca       *testpki.CA
	front    *Proxy
	cat      *Proxy
	frontSrc *mtlstest.Source
	catSrc   *mtlstest.Source
	frontReg *prometheus.Registry
	catReg   *prometheus.Registry
	stop     func() // cancels both and waits for Run to return
}

type meshOpts struct {
	appAddr  string
	appProto Protocol
	limits   Limits
	timeouts Timeouts
	noPolicy bool
	tracer   trace.Tracer
	logger   *slog.Logger // both sidecars' (nil: discard)
	// both sidecars' overrides of the MeshConfig's switches
	telemetry     policy.Telemetry
	frontObserver func(*Event) // the frontend's (outbound) observer
	// catalog's inbound side only
	observer      func(*Event)
	allowUpgrades []string
}

func newMesh(t testing.TB, o meshOpts) *mesh {
	t.Helper()
	ca := testpki.NewCA(t, td)
	m := &mesh{
		ca:       ca,
		frontSrc: mtlstest.NewSource(ca.SVID(t, frontendID), ca.Bundle()),
		catSrc:   mtlstest.NewSource(ca.SVID(t, catalogID), ca.Bundle()),
		frontReg: prometheus.NewRegistry(),
		catReg:   prometheus.NewRegistry(),
	}
	tdom := spiffeid.RequireTrustDomainFromString(td)
	var err error
	m.cat, err = New(Config{
		Service: "catalog", Namespace: "default", TrustDomain: tdom,
		SVID: m.catSrc, Bundle: m.catSrc,
		InboundAddr: "127.0.0.1:0", AppAddr: o.appAddr, AppProtocol: o.appProto,
		Limits: o.limits, Timeouts: o.timeouts, Registerer: m.catReg, Tracer: o.tracer,
		Observer: o.observer, AllowUpgrades: o.allowUpgrades, Logger: o.logger, Telemetry: o.telemetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.front, err = New(Config{
		Service: "frontend", Namespace: "default", TrustDomain: tdom,
		SVID: m.frontSrc, Bundle: m.frontSrc,
		Upstreams:     []Upstream{{Service: "catalog", Listen: "127.0.0.1:0", Protocol: upstreamProto(o.appProto)}},
		HTTPProxyAddr: "127.0.0.1:0",
		Limits:        o.limits, Timeouts: o.timeouts, Registerer: m.frontReg, Tracer: o.tracer,
		Logger: o.logger, Telemetry: o.telemetry, Observer: o.frontObserver,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.front.SetEndpoints("catalog", []string{m.cat.InboundAddr().String()}); err != nil {
		t.Fatal(err)
	}
	if !o.noPolicy {
		m.cat.SetPolicy(allowAll())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range []*Proxy{m.front, m.cat} {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	var once sync.Once
	m.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(m.stop)
	return m
}

func upstreamProto(p Protocol) Protocol {
	if p == ProtocolHTTP2 || p == ProtocolGRPC || p == ProtocolTCP {
		return p
	}
	return ProtocolHTTP
}

// outURL is the frontend app's plaintext URL for catalog.
// rawRoundTrip writes req as raw bytes on a fresh connection from dial
// and reads the status and body of the answer.
func rawRoundTrip(t *testing.T, dial func() (net.Conn, error), req string) (int, string) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// inboundRaw sends req to the catalog sidecar's inbound port over mTLS
// as frontend (ALPN http/1.1).
func (m *mesh) inboundRaw(t *testing.T, req string) (int, string) {
	t.Helper()
	return rawRoundTrip(t, func() (net.Conn, error) {
		return tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP1))
	}, req)
}

// outboundRaw sends req in plaintext to the frontend sidecar's catalog
// listener.
func (m *mesh) outboundRaw(t *testing.T, req string) (int, string) {
	t.Helper()
	return rawRoundTrip(t, func() (net.Conn, error) {
		return net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
	}, req)
}

func (m *mesh) outURL(path string) string {
	return "http://" + m.front.UpstreamAddr("catalog").String() + path
}

// sidecarTLS is a client config for talking to the catalog inbound directly
// as the holder of svidID's certificate from ca (a sidecar or an attacker).
func sidecarTLS(t testing.TB, ca *testpki.CA, svidID string, alpn string) *tls.Config {
	t.Helper()
	src := mtlstest.NewSource(ca.SVID(t, svidID), ca.Bundle())
	return mtls.ClientConfig(src, src, mtls.AuthorizeMemberOf(ca.TrustDomain), mtls.Options{NextProtos: []string{alpn}})
}

// echoApp is a plaintext HTTP app recording what reached it.
type echoApp struct {
	srv   *http.Server
	addr  string
	hits  atomic.Int64
	mu    sync.Mutex
	paths []string
}

func newEchoApp(t testing.TB, h2c bool, extra map[string]http.Handler) *echoApp {
	t.Helper()
	a := &echoApp{}
	mux := http.NewServeMux()
	for p, h := range extra {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.EscapedPath())
		a.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-App-Proto", r.Proto)
		w.Header().Set("X-App-Peer", r.Header.Get(PeerIdentityHeader))
		w.Header().Set("X-App-Path", r.URL.EscapedPath())
		w.Header().Set("X-App-TE", strings.Join(r.TransferEncoding, ","))
		if r.URL.Query().Get("chunked") != "" {
			// Several flushed writes: a chunked response.
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				http.NewResponseController(w).Flush()
			}
		}
		fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.Path, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if h2c {
		a.srv.Protocols = new(http.Protocols)
		a.srv.Protocols.SetUnencryptedHTTP2(true)
		a.srv.Protocols.SetHTTP1(true)
	}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() { _ = a.srv.Close() })
	return a
}

func (a *echoApp) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

// tcpEchoApp echoes bytes, upper-cased, until EOF, then closes its side.
func tcpEchoApp(t *testing.T) (addr string, conns *atomic.Int64) {
	return serveTCP(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		_, _ = c.Write([]byte(strings.ToUpper(string(b))))
	})
}

// serveTCP runs handle on every connection to a loopback listener (closing
// the connection after it) and counts the connections.
func serveTCP(t *testing.T, handle func(net.Conn)) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

func h2Client(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: testTimeout, Transport: &http2.Transport{TLSClientConfig: cfg}}
}

func mustGet(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return res, string(b)
}

var errRefused = errors.New("refused")

// h2cClient speaks HTTP/2 with prior knowledge over plaintext, like a gRPC
// or h2c app.
func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: testTimeout, Transport: tr}
}

func tlsDial(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	// TLS 1.3: the server's verdict on our certificate arrives after the
	// client finished; one read surfaces a refusal.
	_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := tc.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		tc.Close()
		return nil, err
	}
	_ = tc.SetReadDeadline(time.Time{})
	return tc, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

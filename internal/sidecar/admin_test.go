package sidecar

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/proxy"
	"meshward.dev/meshward/internal/testpki"
)

const td = "example.org"

// startAdmin serves the admin endpoints for a sidecar holding svid and
// returns their base URL, the proxy and the state the watch stream fills.
func startAdmin(t *testing.T, leaf testpki.Leaf) (string, *proxy.Proxy, *sidecarState) {
	t.Helper()
	ca := testpki.NewCA(t, td)
	id := spiffeid.RequireFromString("spiffe://" + td + "/ns/default/sa/frontend")
	src := mtlstest.NewSource(ca.IssueSVID(t, id, leaf), ca.Bundle())
	reg := prometheus.NewRegistry()
	p, err := proxy.New(proxy.Config{
		Service: "frontend", Namespace: "default", TrustDomain: id.TrustDomain(),
		SVID: src, Bundle: src, AppAddr: "127.0.0.1:1", Registerer: reg,
		Upstreams: []proxy.Upstream{{Service: "catalog", Listen: "127.0.0.1:0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	st := &sidecarState{endpoints: map[string][]string{}}
	go func() { done <- serveAdmin(ctx, ln, reg, src, st, newTapHub()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String(), p, st
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// Before the control plane's first update the sidecar has no policy (it
// would deny every call) and no endpoints, so it must not claim ready:
// `up` starts apps and prints "is up" on this signal.
func TestReadyzWaitsForFirstUpdate(t *testing.T) {
	base, p, st := startAdmin(t, testpki.Leaf{})
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "first update") {
		t.Fatalf("/readyz before any update = %d %q; want 503 naming the first update", code, body)
	}
	if code, body := get(t, base+"/endpoints"); code != http.StatusOK || strings.TrimSpace(body) != "{}" {
		t.Fatalf("/endpoints before any update = %d %q; want 200 {}", code, body)
	}

	applyUpdate(p, td, st, &apiv1.MeshUpdate{
		Endpoints:         map[string]*apiv1.Endpoints{"catalog": {Addrs: []string{"127.0.0.1:7001", "127.0.0.1:7002"}}},
		EndpointsComplete: true,
	}, slog.New(slog.DiscardHandler))

	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the first update = %d %q; want 200", code, body)
	}
	want := `{"catalog":["127.0.0.1:7001","127.0.0.1:7002"]}`
	if code, body := get(t, base+"/endpoints"); code != http.StatusOK || strings.TrimSpace(body) != want {
		t.Fatalf("/endpoints = %d %q; want %s", code, body, want)
	}
}

// An expired SVID makes the sidecar unready even once configured: every
// handshake it offers would be refused.
func TestReadyzRefusesExpiredSVID(t *testing.T) {
	base, p, st := startAdmin(t, testpki.Leaf{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	applyUpdate(p, td, st, &apiv1.MeshUpdate{EndpointsComplete: true}, slog.New(slog.DiscardHandler))
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "SVID") {
		t.Fatalf("/readyz with an expired SVID = %d %q; want 503 naming the SVID", code, body)
	}
}

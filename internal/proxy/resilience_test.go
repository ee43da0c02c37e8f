package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/mtls/mtlstest"
)

// TestDeadEndpointRetriedAndEjected: with one live and one dead endpoint,
// idempotent requests all succeed (retried once on the live one) and the
// dead endpoint is ejected; a POST with a body is not retried.
func TestDeadEndpointRetriedAndEjected(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more
	if err := m.front.SetEndpoints("catalog", []string{deadAddr, m.cat.InboundAddr().String()}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		res, err := http.Get(m.outURL("/r"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
	}
	up := (*m.front.upstreams.Load())["catalog"]
	var deadEP *endpoint
	for _, e := range up.eps.Load().eps {
		if e.addr == deadAddr {
			deadEP = e
		}
	}
	if deadEP == nil || deadEP.healthy(m.front.now()) {
		t.Error("dead endpoint not ejected")
	}
	if got := app.hits.Load(); got != 20 {
		t.Errorf("app hits %d, want 20", got)
	}

	// Only the dead endpoint: a POST with a body gets 502, not a retry.
	if err := m.front.SetEndpoints("catalog", []string{deadAddr}); err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(m.outURL("/p"), "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("POST to dead endpoint: %d, want 502", res.StatusCode)
	}
	if err := m.front.SetEndpoints("catalog", nil); err != nil {
		t.Fatal(err)
	}
	res, err = http.Get(m.outURL("/none"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no endpoints: %d, want 503", res.StatusCode)
	}
	if err := m.front.SetEndpoints("catalog", []string{"no-port"}); err == nil {
		t.Error("malformed endpoint accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	src := mtlstest.NewSource(nil)
	good := func() Config {
		return Config{
			Service: "catalog", Namespace: "default", TrustDomain: spiffeid.RequireTrustDomainFromString(td),
			SVID: src, Bundle: src, InboundAddr: "127.0.0.1:0", AppAddr: "127.0.0.1:8080", AppProtocol: ProtocolHTTP,
			Upstreams: []Upstream{{Service: "payments", Listen: "127.0.0.1:9001"}},
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // field names the error must mention
	}{
		{"ok", func(*Config) {}, nil},
		{"missing identity", func(c *Config) { c.Service, c.Namespace, c.SVID = "", "", nil }, []string{"service:", "namespace:", "svid:"}},
		{"app not on loopback", func(c *Config) { c.AppAddr = "10.0.0.1:8080" }, []string{"app:"}},
		{"bad protocol", func(c *Config) { c.AppProtocol = "udp" }, []string{"protocol:"}},
		{"plaintext listener off loopback", func(c *Config) { c.Upstreams[0].Listen = "0.0.0.0:9001" }, []string{"upstreams[0].listen:"}},
		{"duplicate upstream", func(c *Config) { c.Upstreams = append(c.Upstreams, c.Upstreams[0]) }, []string{"upstreams[1].service:"}},
		{"bad upstream name", func(c *Config) { c.Upstreams[0].Service = "Pay/ments" }, []string{"upstreams[0].service:"}},
		{"negative limit", func(c *Config) { c.Limits.MaxConnsPerPeer = -1 }, []string{"limits.maxConnsPerPeer:"}},
		{"nothing to do", func(c *Config) { c.InboundAddr, c.Upstreams = "", nil }, []string{"inbound:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good()
			tc.modify(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var missing []string
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					missing = append(missing, w)
				}
			}
			if diff := cmp.Diff([]string(nil), missing); diff != "" {
				t.Errorf("error %q does not name (-want +got):\n%s", err, diff)
			}
		})
	}
}

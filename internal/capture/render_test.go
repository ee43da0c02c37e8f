package capture

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// base is a sidecar with Linkerd-like ports, so the goldens read familiar.
func base() Config {
	return Config{InboundPort: 4143, OutboundPort: 4140, AdminPort: 4191, ProxyUID: 2102}
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestRender(t *testing.T) {
	t.Parallel()
	many := make([]int, 0, 20)
	for p := 9000; p < 9020; p++ {
		many = append(many, p)
	}
	cases := []struct {
		name string
		cfg  func(*Config)
	}{
		{"all-ports", func(*Config) {}},
		{"no-admin", func(c *Config) { c.AdminPort = 0 }},
		{"listed-ports", func(c *Config) { c.InboundPorts = []int{8080, 443, 8080} }},
		{"excludes", func(c *Config) {
			c.ProxyGID = 2102
			c.ExcludeInboundPorts = []int{22, 4567, 4568}
			c.ExcludeOutboundPorts = []int{5432, 443}
			c.ExcludeInboundCIDRs = prefixes("10.0.0.0/8", "192.168.1.0/24")
			c.ExcludeOutboundCIDRs = prefixes("169.254.169.254/32", "10.96.0.0/12")
		}},
		{"multiport-chunks", func(c *Config) {
			c.InboundPorts = many
			c.ExcludeOutboundPorts = many
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := base()
			tc.cfg(&cfg)
			got, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "TestRender", tc.name+".golden"), got)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/capture -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestRenderDeterministic(t *testing.T) {
	t.Parallel()
	a, b := base(), base()
	a.InboundPorts, b.InboundPorts = []int{80, 443}, []int{443, 80}
	a.ExcludeOutboundCIDRs, b.ExcludeOutboundCIDRs = prefixes("10.0.0.0/8", "172.16.0.0/12"), prefixes("172.16.0.0/12", "10.0.0.0/8")
	ra, _ := Render(a)
	rb, _ := Render(b)
	if ra != rb {
		t.Errorf("order of the lists changed the rules:\n%s\n%s", ra, rb)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		cfg       func(*Config)
		wantField string // "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no inbound port", func(c *Config) { c.InboundPort = 0 }, "InboundPort"},
		{"inbound port too big", func(c *Config) { c.InboundPort = 65536 }, "InboundPort"},
		{"no outbound port", func(c *Config) { c.OutboundPort = 0 }, "OutboundPort"},
		{"negative admin port", func(c *Config) { c.AdminPort = -1 }, "AdminPort"},
		{"same inbound and outbound", func(c *Config) { c.OutboundPort = c.InboundPort }, "OutboundPort"},
		{"admin is outbound", func(c *Config) { c.AdminPort = c.OutboundPort }, "AdminPort"},
		{"root proxy", func(c *Config) { c.ProxyUID = 0 }, "ProxyUID"},
		{"negative uid", func(c *Config) { c.ProxyUID = -5 }, "ProxyUID"},
		{"uid -1 as unsigned", func(c *Config) { c.ProxyUID = 1<<32 - 1 }, "ProxyUID"},
		{"negative gid", func(c *Config) { c.ProxyGID = -1 }, "ProxyGID"},
		{"bad app port", func(c *Config) { c.InboundPorts = []int{0} }, "InboundPorts"},
		{"app port is the sidecar's", func(c *Config) { c.InboundPorts = []int{4143} }, "InboundPorts"},
		{"app port is admin", func(c *Config) { c.InboundPorts = []int{4191} }, "InboundPorts"},
		{"app port excluded too", func(c *Config) { c.InboundPorts = []int{80}; c.ExcludeInboundPorts = []int{80} }, "InboundPorts"},
		{"bad excluded inbound port", func(c *Config) { c.ExcludeInboundPorts = []int{70000} }, "ExcludeInboundPorts"},
		{"bad excluded outbound port", func(c *Config) { c.ExcludeOutboundPorts = []int{-1} }, "ExcludeOutboundPorts"},
		{"outbound port excluded", func(c *Config) { c.ExcludeOutboundPorts = []int{4140} }, "ExcludeOutboundPorts"},
		{"zero prefix", func(c *Config) { c.ExcludeInboundCIDRs = []netip.Prefix{{}} }, "ExcludeInboundCIDRs"},
		{"ipv6 cidr", func(c *Config) { c.ExcludeOutboundCIDRs = prefixes("fd00::/8") }, "ExcludeOutboundCIDRs"},
		{"host bits", func(c *Config) { c.ExcludeOutboundCIDRs = prefixes("10.1.2.3/8") }, "ExcludeOutboundCIDRs"},
		{"everything excluded", func(c *Config) { c.ExcludeOutboundCIDRs = prefixes("0.0.0.0/0") }, "ExcludeOutboundCIDRs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := base()
			tc.cfg(&cfg)
			err := cfg.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("Validate() = %v, want a FieldError for %s", err, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name the field", err)
			}
			if _, rerr := Render(cfg); rerr == nil {
				t.Error("Render accepted an invalid config")
			}
		})
	}
}

func TestParseLists(t *testing.T) {
	t.Parallel()
	if got, err := ParsePorts("x", []string{"80", "443"}); err != nil || !cmp.Equal(got, []int{80, 443}) {
		t.Errorf("ParsePorts = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "65536", "80x", "+80", "08", " 80", "-1"} {
		if _, err := ParsePorts("ExcludeInboundPorts", []string{bad}); err == nil || !strings.Contains(err.Error(), "ExcludeInboundPorts") {
			t.Errorf("ParsePorts(%q) = %v, want an error naming the field", bad, err)
		}
	}
	if got, err := ParseCIDRs("x", []string{"10.0.0.0/8"}); err != nil || len(got) != 1 {
		t.Errorf("ParseCIDRs = %v, %v", got, err)
	}
	for _, bad := range []string{"", "10.0.0.0", "10.0.0.0/33", "banana"} {
		if _, err := ParseCIDRs("ExcludeOutboundCIDRs", []string{bad}); err == nil || !strings.Contains(err.Error(), "ExcludeOutboundCIDRs") {
			t.Errorf("ParseCIDRs(%q) = %v, want an error naming the field", bad, err)
		}
	}
}

// TestDocsInSync keeps the example in docs/capture.md what Render prints.
func TestDocsInSync(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "capture.md"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := base() // --inbound-port 4143 --outbound-port 4140 --admin-port 4191 --proxy-uid 2102
	want, err := Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```\n"+want+"```\n") {
		t.Errorf("docs/capture.md does not show what Render prints for its example; paste:\n%s", want)
	}
}

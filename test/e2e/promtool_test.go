//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/testenv"
)

const controlMetrics = "http://127.0.0.1:9900/metrics"

// metricsDoc is the page that must list every metric.
const metricsDoc = "../../docs/metrics.md"

// standardFamily reports whether a metric comes from the Prometheus Go
// client's own collectors (documented as a group).
func standardFamily(name string) bool {
	return strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
}

// families returns the metric names a text exposition declares (# TYPE).
func families(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	sort.Strings(out)
	return out
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// sidecarAddrs are the sidecars' admin and inbound addresses by
// service, from status.
func sidecarAddrs(t *testing.T, dataDir string) (admin, inbound map[string]string) {
	t.Helper()
	var st struct {
		Workloads []struct {
			Service     string `json:"service"`
			AdminAddr   string `json:"admin_addr"`
			InboundAddr string `json:"inbound_addr"`
		} `json:"workloads"`
	}
	if err := json.Unmarshal([]byte(mustMeshward(t, "status", "-o", "json", "--data-dir", dataDir)), &st); err != nil {
		t.Fatal(err)
	}
	admin, inbound = map[string]string{}, map[string]string{}
	for _, w := range st.Workloads {
		admin[w.Service], inbound[w.Service] = w.AdminAddr, w.InboundAddr
	}
	return admin, inbound
}

// promtool runs `promtool check metrics` on body and fails the test on
// any problem it reports.
func promtool(t *testing.T, name, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || strings.TrimSpace(out.String()) != "" {
		t.Errorf("promtool check metrics on %s: %v\n%s", name, err, out.String())
	}
}

// TestPromtool runs the demo mesh, sends allowed and denied traffic, and
// checks every sidecar's and the control plane's /metrics with promtool;
// every metric they expose must be in docs/metrics.md.
func TestPromtool(t *testing.T) {
	testenv.Tool(t, "promtool", "prometheus")
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), ".meshward")
	up := start(t, nil, "up", "--demo", "--data-dir", dataDir)
	up.waitOutput(t, "is up", 60*time.Second)

	for range 3 {
		curl(t, frontend+"/api/products")
	}
	curl(t, "-X", "POST", "-d", `{"product":2}`, frontend+"/api/orders")
	if code, _ := curl(t, frontend+"/api/forbidden"); code != 403 {
		t.Fatalf("GET /api/forbidden = %d, want 403", code)
	}
	addrs, inbound := sidecarAddrs(t, dataDir)
	if len(addrs) != 4 {
		t.Fatalf("admin addresses: %v", addrs)
	}
	// A plaintext attempt on an inbound port: a handshake failure series.
	if code, _ := curl(t, "http://"+inbound["catalog"]+"/products"); code != 0 {
		t.Fatalf("plaintext to the catalog's inbound port answered %d", code)
	}

	// Wait (bounded) until the payments sidecar counted the deny.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(fetch(t, "http://"+addrs["payments"]+"/metrics"), `decision="deny"`) {
		if time.Now().After(deadline) {
			t.Fatal("payments sidecar never counted the deny")
		}
		time.Sleep(100 * time.Millisecond)
	}

	bodies := map[string]string{"control plane": fetch(t, controlMetrics)}
	for svc, addr := range addrs {
		bodies[svc+" sidecar"] = fetch(t, "http://"+addr+"/metrics")
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			promtool(t, name, body)
			for _, f := range families(body) {
				if standardFamily(f) {
					continue
				}
				if !bytes.Contains(doc, []byte("`"+f+"`")) {
					t.Errorf("%s exposes %s, which docs/metrics.md does not list", name, f)
				}
			}
		})
	}
	// Real values, not just declarations.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^meshward_requests_total\{code="200",decision="allow",destination="spiffe://shop.local/ns/default/sa/catalog",protocol="[a-z0-9]+",source="spiffe://shop.local/ns/default/sa/frontend"\} [1-9]`),
		regexp.MustCompile(`(?m)^meshward_tls_handshake_failures_total\{reason="not_tls",side="inbound"\} [1-9]`),
		regexp.MustCompile(`(?m)^meshward_svid_expiry_timestamp_seconds [1-9]`),
	} {
		if !want.MatchString(bodies["catalog sidecar"]) {
			t.Errorf("catalog sidecar metrics lack %s; they are:\n%s", want, grepLines(bodies["catalog sidecar"], "meshward_"))
		}
	}
	if !strings.Contains(bodies["control plane"], "meshward_control_connected_sidecars 4") {
		t.Error("control plane does not count 4 connected sidecars")
	}
}

// TestMetricsDocumented: every metric name in the source is in
// docs/metrics.md, even one no test run exposes.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(meshward_[a-z0-9_]+)"`)
	found := 0
	err = filepath.WalkDir("../../internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllSubmatch(src, -1) {
			found++
			if !bytes.Contains(doc, []byte("`"+string(m[1])+"`")) {
				t.Errorf("%s defines %s, which docs/metrics.md does not list", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 10 {
		t.Fatalf("found only %d metric definitions: the pattern no longer matches the source", found)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

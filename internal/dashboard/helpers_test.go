package dashboard

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

// t0 is the fixed time of every test.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const td = "shop.local"

func id(svc string) string { return "spiffe://" + td + "/ns/default/sa/" + svc }

// clock is an injected clock that tests advance by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeSource is the control plane as the dashboard sees it.
type fakeSource struct {
	mu       sync.Mutex
	status   *apiv1.MeshStatusResponse
	events   []store.AuditEvent
	policy   *apiv1.Policy
	auditErr error
	since    time.Time // the last AuditEvents call's argument
	clock    *clock    // set by newTest: when pushed counters are received
}

// sidecars are the test sidecars by admin address: fakeSource.Status puts
// what each one counts into its workload's pushed traffic, as a sidecar's
// report does.
var sidecars sync.Map // addr -> *sidecarServer

func (f *fakeSource) Status() *apiv1.MeshStatusResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		return &apiv1.MeshStatusResponse{TrustDomain: td}
	}
	for _, w := range f.status.Workloads {
		v, ok := sidecars.Load(w.GetAdminAddr())
		if !ok {
			continue
		}
		sc := v.(*sidecarServer)
		sc.mu.Lock()
		if sc.status != http.StatusOK {
			w.Traffic, w.TrafficAt = nil, 0 // it stopped reporting
		} else if sc.pushed != sc.body || w.TrafficAt == 0 {
			values, err := parseTraffic(strings.NewReader(sc.body))
			w.Traffic, w.TrafficAt = nil, 0
			if err == nil && f.clock != nil {
				for k, v := range values {
					w.Traffic = append(w.Traffic, &apiv1.TrafficCounter{Kind: k.kind, Source: k.source, Destination: k.destination, Protocol: k.protocol, Code: k.code, Decision: k.decision, Value: v})
				}
				w.TrafficAt = f.clock.Now().UnixNano()
			}
			sc.pushed = sc.body
		}
		sc.mu.Unlock()
	}
	return f.status
}

func (f *fakeSource) AuditEvents(_ context.Context, since time.Time) ([]store.AuditEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since = since
	var out []store.AuditEvent
	for _, e := range f.events {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out, f.auditErr
}

func (f *fakeSource) CurrentPolicy() *apiv1.Policy {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policy
}

// sidecarServer is a sidecar's admin /metrics on a real loopback socket.
type sidecarServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   string
	pushed string // the body last turned into pushed counters
	status int
	hits   atomic.Int64 // requests to it: the dashboard must make none
}

func newSidecar(t *testing.T, body string) *sidecarServer {
	t.Helper()
	s := &sidecarServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if r.URL.Path != "/metrics" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	sidecars.Store(s.addr(), s)
	t.Cleanup(func() { sidecars.Delete(s.addr()) })
	return s
}

func (s *sidecarServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *sidecarServer) addr() string { return s.Listener.Addr().String() }

// metricsText renders traffic counters in the sidecars' exposition format.
// Each entry: "requests source destination protocol code decision value"
// or "tcp source destination decision value".
func metricsText(lines ...string) string {
	var req, tcp []string
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "requests":
			req = append(req, fmt.Sprintf("meshward_requests_total{code=%q,decision=%q,destination=%q,protocol=%q,source=%q} %s", f[4], dash(f[5]), id(f[2]), f[3], id(f[1]), f[6]))
		case "tcp":
			tcp = append(tcp, fmt.Sprintf("meshward_tcp_connections_total{decision=%q,destination=%q,source=%q} %s", dash(f[3]), id(f[2]), id(f[1]), f[4]))
		}
	}
	sort.Strings(req)
	sort.Strings(tcp)
	var b strings.Builder
	b.WriteString("# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n")
	b.WriteString("# HELP meshward_requests_total Requests.\n# TYPE meshward_requests_total counter\n")
	for _, l := range req {
		b.WriteString(l + "\n")
	}
	b.WriteString("# HELP meshward_tcp_connections_total Connections.\n# TYPE meshward_tcp_connections_total counter\n")
	for _, l := range tcp {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// dash reads "-" as the empty label value.
func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func workload(svc, admin string) *apiv1.WorkloadStatus {
	return &apiv1.WorkloadStatus{
		SpiffeId: id(svc), Service: svc, Namespace: "default", InboundAddr: "127.0.0.1:150" + fmt.Sprint(len(svc)),
		SvidSerial: "0a" + strings.Repeat(fmt.Sprint(len(svc)), 30), SvidNotAfter: t0.Add(45 * time.Minute).Unix(),
		PolicyVersion: "sha256:0123456789abcdef0123456789abcdef", LastReport: t0.Add(-3 * time.Second).Unix(), AdminAddr: admin,
	}
}

// demoPolicy is the demo shop's policy set, as the control plane stores it.
func demoPolicy(t *testing.T) *apiv1.Policy {
	t.Helper()
	dir := "../../examples/demo/policies"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &apiv1.Policy{Version: "sha256:feedfacefeedfacefeedface", Revision: 3, GitCommit: "4e94245aa1b2"}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p.Files = append(p.Files, &apiv1.PolicyFile{Name: e.Name(), Content: b})
	}
	return p
}

func demoMesh(t *testing.T) *config.Mesh {
	t.Helper()
	m, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newTest builds a dashboard on a fake source and a fixed clock.
func newTest(t *testing.T, src *fakeSource, mesh *config.Mesh) (*Dashboard, *clock) {
	t.Helper()
	c := &clock{t: t0}
	if src != nil {
		src.clock = c
	}
	d, err := newDashboard(Config{Source: src, Mesh: mesh, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// get serves one GET through the dashboard (Host 127.0.0.1:9900).
func get(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9900"+path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.String()
}

// golden compares got with testdata/<test>/<name>.golden (-update writes
// it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", strings.ReplaceAll(t.Name(), "/", "_"), name+".golden")
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
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

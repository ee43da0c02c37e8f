package dashboard

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// shop is the demo shop's sidecars on real loopback sockets, with traffic
// as each sidecar counts it: inbound series carry a decision, outbound
// ones do not.
type shop struct {
	src                                 *fakeSource
	frontend, catalog, orders, payments *sidecarServer
}

func newShop(t *testing.T) *shop {
	s := &shop{
		frontend: newSidecar(t, metricsText(
			"requests frontend catalog http2 200 - 10",
			"requests frontend payments http2 403 - 2",
		)),
		catalog: newSidecar(t, metricsText(
			"requests frontend catalog http2 200 allow 10",
			"requests orders catalog http2 200 allow 4",
			"requests orders catalog http2 503 allow 1",
		)),
		orders:   newSidecar(t, metricsText("requests orders catalog http2 200 - 5")),
		payments: newSidecar(t, metricsText("requests frontend payments http2 403 deny 2")),
	}
	s.src = &fakeSource{
		status: &apiv1.MeshStatusResponse{TrustDomain: td, Workloads: []*apiv1.WorkloadStatus{
			workload("catalog", s.catalog.addr()),
			workload("frontend", s.frontend.addr()),
			workload("orders", s.orders.addr()),
			workload("payments", s.payments.addr()),
		}},
	}
	return s
}

// scrub replaces the sidecars' random ports with their names.
func (s *shop) scrub(out string) string {
	for name, sc := range map[string]*sidecarServer{"frontend": s.frontend, "catalog": s.catalog, "orders": s.orders, "payments": s.payments} {
		out = strings.ReplaceAll(out, sc.addr(), "ADMIN-"+name)
	}
	return out
}

func TestGraph(t *testing.T) {
	s := newShop(t)
	s.src.policy = demoPolicy(t)
	d, clk := newTest(t, s.src, demoMesh(t))

	// First scrape: totals, no rates yet.
	code, _, body := get(t, d, "/api/graph")
	if code != http.StatusOK {
		t.Fatalf("GET /api/graph = %d", code)
	}
	golden(t, "first.json", s.scrub(body))

	// Two seconds later the counters moved: rates are the increase over
	// the interval. The orders sidecar's metrics are now unavailable.
	clk.Add(2 * time.Second)
	s.frontend.set(metricsText(
		"requests frontend catalog http2 200 - 30",
		"requests frontend payments http2 403 - 3",
	))
	s.catalog.set(metricsText(
		"requests frontend catalog http2 200 allow 30",
		"requests orders catalog http2 200 allow 4",
		"requests orders catalog http2 503 allow 2",
	))
	s.payments.set(metricsText("requests frontend payments http2 403 deny 3"))
	s.orders.mu.Lock()
	s.orders.status = http.StatusInternalServerError
	s.orders.mu.Unlock()

	code, _, body = get(t, d, "/api/graph")
	if code != http.StatusOK {
		t.Fatalf("GET /api/graph = %d", code)
	}
	golden(t, "second.json", s.scrub(body))
	var g Graph
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	byPair := map[string]Edge{}
	for _, e := range g.Edges {
		byPair[label(e.Source)+"->"+label(e.Destination)] = e
	}
	if e := byPair["frontend->catalog"]; e.RequestsPerSecond != 10 || !e.RateKnown || e.Requests != 30 || !e.AllowedByPolicy || e.Forbidden {
		t.Errorf("frontend->catalog = %+v, want 10 req/s, 30 requests, allowed", e)
	}
	if e := byPair["frontend->payments"]; e.Denies != 3 || !e.Forbidden || e.AllowedByPolicy {
		t.Errorf("frontend->payments = %+v, want 3 denies, forbidden", e)
	}
	if e := byPair["orders->catalog"]; e.Errors != 2 || e.Requests != 6 {
		t.Errorf("orders->catalog = %+v, want 6 requests, 2 errors", e)
	}

	_, _, frag := get(t, d, "/fragment/graph")
	golden(t, "second.html", s.scrub(frag))
	for _, want := range []string{`data-node="frontend"`, `data-node="catalog"`, `data-node="orders"`, `data-node="payments"`, `data-source="frontend" data-destination="catalog"`, `class="edge denied forbidden"`} {
		if !strings.Contains(frag, want) {
			t.Errorf("graph fragment has no %s", want)
		}
	}
}

func TestGraphCounterReset(t *testing.T) {
	sc := newSidecar(t, metricsText("requests frontend catalog http 200 allow 100"))
	src := &fakeSource{status: &apiv1.MeshStatusResponse{TrustDomain: td, Workloads: []*apiv1.WorkloadStatus{workload("catalog", sc.addr())}}}
	d, clk := newTest(t, src, nil)
	d.graph(t.Context())
	clk.Add(4 * time.Second)
	sc.set(metricsText("requests frontend catalog http 200 allow 8")) // the sidecar restarted
	g := d.graph(t.Context())
	if len(g.Edges) != 1 || g.Edges[0].RequestsPerSecond != 2 {
		t.Fatalf("edges = %+v, want one at 2 req/s (8 since the restart, over 4s)", g.Edges)
	}
}

// TestDashboardNeverFetchesReportedAddresses: a workload's reported admin
// address is its own claim (issue 13, also found: it made the control plane
// fetch /metrics from any loopback port a workload named). The dashboard
// reads the counters sidecars push in their reports and fetches nothing:
// neither a loopback port that answers, nor any other address.
func TestDashboardNeverFetchesReportedAddresses(t *testing.T) {
	victim := newSidecar(t, metricsText("requests frontend catalog http 200 allow 1")) // some local port that answers
	var workloads []*apiv1.WorkloadStatus
	for _, addr := range []string{victim.addr(), "10.0.0.1:9090", "169.254.169.254:80", "metadata.internal:80"} {
		w := workload("evil", addr)
		w.SpiffeId = id("evil-" + strconv.Itoa(len(workloads)))
		workloads = append(workloads, w)
	}
	src := &fakeSource{status: &apiv1.MeshStatusResponse{TrustDomain: td, Workloads: workloads}}
	d, clk := newTest(t, src, nil)
	for range 3 {
		get(t, d, "/api/graph")
		get(t, d, "/fragment/graph")
		clk.Add(DefaultScrapeInterval)
	}
	if n := victim.hits.Load(); n != 0 {
		t.Fatalf("the dashboard fetched a reported admin address %d times", n)
	}
	g := d.graph(t.Context())
	if len(g.Scrapes) != len(workloads) {
		t.Fatalf("scrapes = %+v", g.Scrapes)
	}
	for _, sc := range g.Scrapes {
		if sc.OK != (sc.Addr == victim.addr()) {
			t.Errorf("scrape %+v: only the workload that pushed counters has them", sc)
		}
	}
}

func TestParseTraffic(t *testing.T) {
	got, err := parseTraffic(strings.NewReader(metricsText(
		"requests frontend catalog http 200 allow 3",
		"requests frontend catalog http 200 - 2",
		"tcp frontend catalog deny 4",
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[seriesKey]float64{
		{kind: "http", source: id("frontend"), destination: id("catalog"), protocol: "http", code: "200", decision: "allow"}: 3,
		{kind: "http", source: id("frontend"), destination: id("catalog"), protocol: "http", code: "200"}:                    2,
		{kind: "tcp", source: id("frontend"), destination: id("catalog"), decision: "deny"}:                                  4,
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(seriesKey{})); diff != "" {
		t.Errorf("parseTraffic (-want +got):\n%s", diff)
	}
}

// TestLayoutNoOverlap: on the demo shop (and a bigger mesh), no node
// overlaps another and no edge label covers a node.
func TestLayoutNoOverlap(t *testing.T) {
	type rect struct{ x, y, w, h int }
	overlap := func(a, b rect) bool {
		return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
	}
	build := func(svcs []string, calls [][2]string) Graph {
		var ws []*apiv1.WorkloadStatus
		for _, s := range svcs {
			ws = append(ws, workload(s, ""))
		}
		var sms []sidecarMetrics
		for i, c := range calls {
			sms = append(sms, sidecarMetrics{target: target{addr: strconv.Itoa(i), spiffeID: id(c[1])}, cur: &sample{values: map[seriesKey]float64{
				{kind: "http", source: id(c[0]), destination: id(c[1]), code: "200", decision: "allow"}: 1,
			}}})
		}
		return buildGraph(ws, sms, nil)
	}
	for name, tc := range map[string]struct {
		svcs  []string
		calls [][2]string
	}{
		"demo": {[]string{"frontend", "catalog", "orders", "payments"}, [][2]string{{"frontend", "catalog"}, {"frontend", "orders"}, {"frontend", "payments"}, {"orders", "catalog"}, {"orders", "payments"}}},
		"wide": {[]string{"gw", "a", "b", "c", "d", "e", "f"}, [][2]string{{"gw", "a"}, {"gw", "b"}, {"gw", "c"}, {"a", "d"}, {"d", "e"}, {"gw", "e"}, {"gw", "f"}, {"c", "f"}, {"b", "f"}}},
	} {
		t.Run(name, func(t *testing.T) {
			l := layoutGraph(build(tc.svcs, tc.calls), nil)
			var nodes []rect
			for _, n := range l.Nodes {
				r := rect{n.X, n.Y, n.W, n.H}
				if r.x < 0 || r.y < 0 || r.x+r.w > l.Width || r.y+r.h > l.Height {
					t.Errorf("node %s at %+v is outside %dx%d", n.Label, r, l.Width, l.Height)
				}
				for _, o := range nodes {
					if overlap(r, o) {
						t.Errorf("node %s overlaps another", n.Label)
					}
				}
				nodes = append(nodes, r)
			}
			for _, e := range l.Edges {
				lr := rect{e.LabelX - 70, e.LabelY - 15, 140, 34}
				for i, nr := range nodes {
					if overlap(lr, nr) {
						t.Errorf("label of %s->%s covers node %s", e.SourceLabel, e.DestinationLabel, l.Nodes[i].Label)
					}
				}
				if lr.y < 0 || lr.y+lr.h > l.Height {
					t.Errorf("label of %s->%s is outside the drawing", e.SourceLabel, e.DestinationLabel)
				}
			}
			if !regexp.MustCompile(`^M \d+ \d+ [CQ] `).MatchString(l.Edges[0].Path) {
				t.Errorf("path %q", l.Edges[0].Path)
			}
		})
	}
}

// TestParseTrafficFiles: real sidecar expositions (captured from the demo)
// parse to their traffic series; corrupt, empty, truncated and wrong-type
// ones are refused or yield nothing.
func TestParseTrafficFiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    int // series
		wantErr bool
	}{
		{file: "catalog.txt", want: 1},
		{file: "payments.txt", want: 1},
		{file: "empty.txt", want: 0},
		{file: "garbage.txt", wantErr: true},
		{file: "truncated.txt", wantErr: true},
		{file: "wrong-type.txt", wantErr: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "metrics", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := parseTraffic(f)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && len(got) != tc.want {
				t.Fatalf("%d series, want %d: %v", len(got), tc.want, got)
			}
			for k, v := range got {
				if k.source == "" || k.destination == "" || v <= 0 {
					t.Errorf("series %+v = %v", k, v)
				}
			}
		})
	}
}

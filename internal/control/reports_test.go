package control

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

// countHandler counts log records whose message is msg.
type countHandler struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (h countHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h countHandler) WithGroup(string) slog.Handler          { return h }

// watchAs opens a Watch stream as the sidecar identity of service, with
// the SVID it got from Bootstrap with a real join token.
func (e *testEnv) watchAs(t *testing.T, c apiv1.ControlClient) grpc.BidiStreamingClient[apiv1.WorkloadReport, apiv1.MeshUpdate] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a wait for an update is bounded
	t.Cleanup(cancel)
	w, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *testEnv) clientAs(t *testing.T, service string) apiv1.ControlClient {
	t.Helper()
	svid, err := e.session(service).Holder().GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return e.conn(tlsCert(svid))
}

// TestForgedDenyReportsAreNotRecorded is the attack of issue 13 item 3: a
// sidecar reports denies attributed to another service, backdated, 20,000
// in one report and more after it. The trail records only denies about the
// reporter's own service, at the control plane's receive time, within the
// per-report and per-identity bounds; the rest is counted and logged once.
func TestForgedDenyReportsAreNotRecorded(t *testing.T) {
	var logged atomic.Int64
	e := startEnv(t, envOpts{logger: slog.New(countHandler{Handler: slog.DiscardHandler, msg: "report items dropped", n: &logged})})
	ctx := context.Background()
	w := e.watchAs(t, e.clientAs(t, "web"))
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	before, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	backdated := start.Add(-72 * time.Hour).UnixNano()
	deny := func(dest string, i int) *apiv1.Deny {
		return &apiv1.Deny{Time: backdated, Source: "spiffe://example.org/ns/default/sa/attacker", Destination: dest, Port: 8080,
			Method: "GET", Path: "/forged/" + strings.Repeat("x", i%50), Rule: "default-deny", Mode: "enforce"}
	}
	big := &apiv1.WorkloadReport{}
	for i := range 20000 {
		dest := "payments" // another service
		if i%2 == 0 {
			dest = "web" // its own, but backdated
		}
		big.Denies = append(big.Denies, deny(dest, i))
	}
	if err := w.Send(big); err != nil {
		t.Fatal(err)
	}
	const more = 50
	for r := range more {
		rep := &apiv1.WorkloadReport{DeniesDropped: 1000}
		for i := range 400 {
			rep.Denies = append(rep.Denies, deny("web", r*400+i))
		}
		if err := w.Send(rep); err != nil {
			t.Fatal(err)
		}
	}
	drops := func(reason string) float64 {
		var m dto.Metric
		if err := e.srv.m.reportDrops.WithLabelValues(reason).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	wantBound := float64(10000-maxDeniesPerReport) + more*(400-maxDeniesPerReport)
	deadline := time.Now().Add(30 * time.Second)
	for drops(dropReportBound) < wantBound {
		if time.Now().After(deadline) {
			t.Fatalf("report_bound drops = %v, want %v", drops(dropReportBound), wantBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What was dropped is logged and summed up in the trail at the next
	// tick, once (not per item, not per report).
	for logged.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the drops were never logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(5 * e.srv.cfg.TickInterval) // more ticks: still one line
	elapsed := time.Since(start)

	after, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{})
	if err != nil {
		t.Fatalf("audit after the attack: %v", err)
	}
	var recorded, summaries int
	for _, ev := range after[len(before):] {
		if !strings.HasPrefix(ev.Action, "request.") {
			continue
		}
		recorded++
		if strings.Contains(ev.Detail, "reported denies not recorded") {
			summaries++
			for _, want := range []string{"foreign_destination=10000", "report_bound="} {
				if !strings.Contains(ev.Detail, want) {
					t.Errorf("summary %q lacks %q", ev.Detail, want)
				}
			}
		}
		if ev.Subject != "web" && ev.Subject != "spiffe://example.org/ns/default/sa/web" {
			t.Fatalf("recorded a deny about %q from web's report: %+v", ev.Subject, ev)
		}
		if got := time.Unix(0, ev.Time); got.Before(start) {
			t.Fatalf("deny recorded at the reported time %v, not the receive time (after %v)", got, start)
		}
	}
	maxRecorded := denyBurst + int(elapsed.Seconds()*denyRate) + 1
	if recorded == 0 || recorded > maxRecorded {
		t.Fatalf("recorded %d denies, want 1..%d (burst %d + %v at %v/s)", recorded, maxRecorded, denyBurst, elapsed, denyRate)
	}
	if got := drops(dropForeign); got != 10000 {
		t.Errorf("foreign_destination drops = %v, want 10000", got)
	}
	if drops(dropRateBound) == 0 {
		t.Error("rate_bound drops = 0; the token bucket never emptied")
	}
	if summaries != 1 {
		t.Errorf("%d summaries of dropped items in the trail, want 1", summaries)
	}
	if n := logged.Load(); n != 1 {
		t.Errorf("logged drops %d times within one interval, want once", n)
	}
	fi, err := os.Stat(filepath.Join(e.dir, bolt.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 4<<20 {
		t.Errorf("store grew to %d bytes", fi.Size())
	}
}

// TestAuditStreamsATrailLargerThanTheMessageLimit: a trail of more than
// 4 MiB (the default gRPC receive limit) in a real bolt store still reads
// through the real client.
func TestAuditStreamsATrailLargerThanTheMessageLimit(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	detail := strings.Repeat("d", 2000)
	const n = 3000 // about 6 MB
	var wg sync.WaitGroup
	for range 30 { // concurrent appends share bbolt batches (one fsync)
		wg.Go(func() {
			for range n / 30 {
				if err := e.store.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Action: "request.deny", Actor: "a", Subject: "web", Detail: detail, Outcome: "denied"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	stream, err := e.admin.Audit(ctx, &apiv1.AuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, pages := 0, 0
	for {
		page, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("audit of a >4 MiB trail: %v", err)
		}
		pages++
		for _, ev := range page.Events {
			if ev.Detail == detail {
				got++
			}
		}
	}
	if got != n {
		t.Fatalf("read %d of %d events", got, n)
	}
	if pages < 6 {
		t.Fatalf("%d pages for ~6 MB, want pages of at most %d bytes", pages, auditPageBytes)
	}
}

// TestWatchStreamsPerIdentityAreCapped: one identity opening many watch
// streams gets MaxWatchesPerIdentity; the rest are refused with
// ResourceExhausted, and a closed one frees its place.
func TestWatchStreamsPerIdentityAreCapped(t *testing.T) {
	e := startEnv(t, envOpts{})
	c := e.clientAs(t, "web")
	const tries = 50
	var open []context.CancelFunc
	refused := 0
	for range tries {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		w, err := c.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Recv()
		switch status.Code(err) {
		case codes.OK:
			open = append(open, cancel)
		case codes.ResourceExhausted:
			refused++
		default:
			t.Fatalf("watch: %v", err)
		}
	}
	if want := e.srv.cfg.MaxWatchesPerIdentity; len(open) != want || refused != tries-want {
		t.Fatalf("%d open, %d refused; want %d open", len(open), refused, want)
	}
	// Another identity is not affected.
	if _, err := e.watchAs(t, e.clientAs(t, "api")).Recv(); err != nil {
		t.Fatalf("api's watch refused: %v", err)
	}
	open[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := e.watchAs(t, c)
		_, err := w.Recv()
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("watch after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBannedWatchGetsOnlyTheBan: after a ban, the banned sidecar's stream
// carries only the fact that it is banned, and the registry others get
// drops its endpoints; an unban restores both.
func TestBannedWatchGetsOnlyTheBan(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	webC := e.clientAs(t, "web")
	web := e.watchAs(t, webC)
	if err := web.Send(&apiv1.WorkloadReport{InboundAddr: "127.0.0.1:1111"}); err != nil {
		t.Fatal(err)
	}
	api := e.watchAs(t, e.clientAs(t, "api"))
	hasWeb := func(u *apiv1.MeshUpdate) bool { return len(u.GetEndpoints()["web"].GetAddrs()) > 0 }
	waitFor := func(w grpc.BidiStreamingClient[apiv1.WorkloadReport, apiv1.MeshUpdate], ok func(*apiv1.MeshUpdate) bool) *apiv1.MeshUpdate {
		t.Helper()
		for {
			u, err := w.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ok(u) {
				return u
			}
		}
	}
	waitFor(api, hasWeb)
	if _, err := e.admin.Ban(ctx, &apiv1.BanRequest{SpiffeId: "spiffe://example.org/ns/default/sa/web", Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	waitFor(api, func(u *apiv1.MeshUpdate) bool { return !hasWeb(u) })
	u := waitFor(web, func(u *apiv1.MeshUpdate) bool { return u.GetBannedSelf() })
	want := &apiv1.MeshUpdate{BannedSelf: true, Banned: []string{"spiffe://example.org/ns/default/sa/web"}}
	if u.String() != want.String() {
		t.Fatalf("banned stream got %v, want only %v", u, want)
	}
	if _, err := e.admin.Unban(ctx, &apiv1.BanRequest{SpiffeId: "spiffe://example.org/ns/default/sa/web"}); err != nil {
		t.Fatal(err)
	}
	waitFor(web, func(u *apiv1.MeshUpdate) bool { return !u.GetBannedSelf() && len(u.GetBundle()) > 0 })
	waitFor(api, hasWeb)
}

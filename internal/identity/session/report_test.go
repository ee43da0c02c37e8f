package session

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity/svid"
	"meshward.dev/meshward/internal/observe"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// TestReportMarshalable: a report holding strings that are not UTF-8 (the
// bytes of GET /%ff) would end the Watch stream when gRPC marshals it;
// report escapes them, every other string stays as it is, and the count
// shows.
func TestReportMarshalable(t *testing.T) {
	t.Parallel()
	bad := &apiv1.WorkloadReport{
		PolicyError: "line 1\nline 2 \xfe",
		Denies: []*apiv1.Deny{
			{Method: "G\xe9T", Path: "/\xff", Source: "spiffe://example.org/ns/default/sa/caller"},
			{Method: "GET", Path: "/caf\u00e9"},
		},
		BundleRoots: []string{"ab", "\xc0"},
	}
	if _, err := proto.Marshal(bad); err == nil {
		t.Fatal("the report marshals as it is: the test proves nothing")
	}
	s := &Session{log: observe.Discard(), ids: svid.New(td, nil), cfg: Config{Report: func() *apiv1.WorkloadReport { return bad }}}
	got := s.report()
	if _, err := proto.Marshal(got); err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
	want := &apiv1.WorkloadReport{
		PolicyError: observe.Printable("line 1\nline 2 \xfe"),
		Denies: []*apiv1.Deny{
			{Method: `G\xe9T`, Path: `/\xff`, Source: "spiffe://example.org/ns/default/sa/caller"},
			{Method: "GET", Path: "/caf\u00e9"},
		},
		BundleRoots: []string{"ab", `\xc0`},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if n := s.ReportStringsEscaped(); n != 4 {
		t.Errorf("ReportStringsEscaped = %d, want 4", n)
	}
	if s.ReportDeniesUnmarshalable() != 0 {
		t.Errorf("ReportDeniesUnmarshalable = %d, want 0", s.ReportDeniesUnmarshalable())
	}
}

// fakeControl is a Watch server that records the reports it receives.
type fakeControl struct {
	apiv1.UnimplementedControlServer
	mu      sync.Mutex
	reports []*apiv1.WorkloadReport
}

func (f *fakeControl) Watch(stream apiv1.Control_WatchServer) error {
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.reports = append(f.reports, r)
		f.mu.Unlock()
	}
}

// TestWatchRequeuesUnsentReport: a report whose Send fails (here: larger
// than the client lets out, which ends the stream as a marshal error did)
// is handed to Unsent, denies and all, instead of being lost.
func TestWatchRequeuesUnsentReport(t *testing.T) {
	t.Parallel()
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	apiv1.RegisterControlServer(srv, &fakeControl{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	deny := &apiv1.Deny{Method: "GET", Path: "/\xff/a-path-long-enough-for-the-report-to-exceed-the-send-bound"}
	unsent := make(chan *apiv1.WorkloadReport, 1)
	s := &Session{log: observe.Discard(), ids: svid.New(td, nil), conn: conn, reportC: make(chan struct{}, 1), cfg: Config{
		ReportInterval: time.Hour,
		Report:         func() *apiv1.WorkloadReport { return &apiv1.WorkloadReport{Denies: []*apiv1.Deny{deny}} },
		Unsent:         func(r *apiv1.WorkloadReport) { unsent <- r },
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.watch(ctx); err == nil {
		t.Fatal("watch returned no error")
	}
	select {
	case r := <-unsent:
		if len(r.Denies) != 1 || r.Denies[0].Path != `/\xff/a-path-long-enough-for-the-report-to-exceed-the-send-bound` {
			t.Errorf("Unsent got %v, want the report's deny (escaped)", r.Denies)
		}
	case <-ctx.Done():
		t.Fatal("Unsent never called: the report's denies are lost")
	}
}

package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

func TestGRPCStatusName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"0", "0"},
		{"5", "5"},
		{"16", "16"},
		{"05", "5"}, // 1*DIGIT: gRPC clients read it as 5 too
		{"00000000000000000000016", "16"},
		{"17", "other"},
		{"99", "other"},
		{"4294967296", "other"},
		{"99999999999999999999999999", "other"},
		{"", "other"},
		{"+5", "other"},
		{"-0", "other"},
		{" 5", "other"},
		{"5 ", "other"},
		{"0x5", "other"},
		{"\xff", "other"},
		{"5\x00", "other"},
	} {
		if got := grpcStatusName(tc.in); got != tc.want {
			t.Errorf("grpcStatusName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzGRPCStatusName: whatever a peer sends as grpc-status, the name is one
// of the 18 values (the metric label stays bounded and printable), and
// strconv, an independent parser, agrees on it.
func FuzzGRPCStatusName(f *testing.F) {
	for _, s := range []string{"0", "5", "16", "17", "05", "", "+5", "-1", "\xff", "184467440737095516160"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := grpcStatusOther
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= 16 {
			want = strconv.FormatUint(n, 10)
		}
		if got := grpcStatusName(v); got != want {
			t.Fatalf("grpcStatusName(%q) = %q, want %q", v, got, want)
		}
	})
}

func TestGRPCStatusFromHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		h    http.Header
		want string
	}{
		{"no grpc-status", http.Header{"Content-Type": {"application/grpc"}}, "none"},
		{"trailers-only", http.Header{"Grpc-Status": {"5"}}, "5"},
		{"undeclared trailer", http.Header{"Trailer:Grpc-Status": {"5"}}, "5"},
		{"trailer wins over header", http.Header{"Grpc-Status": {"0"}, "Trailer:Grpc-Status": {"13"}}, "13"},
		{"declared trailer appended to header", http.Header{"Grpc-Status": {"0", "14"}}, "14"},
		{"out of range", http.Header{"Trailer:Grpc-Status": {"1000"}}, "other"},
		{"not a number", http.Header{"Trailer:Grpc-Status": {"\xffoops"}}, "other"},
		{"empty value", http.Header{"Grpc-Status": {""}}, "other"},
		{"no values", http.Header{"Grpc-Status": {}}, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := grpcStatus(tc.h); got != tc.want {
				t.Errorf("grpcStatus = %q, want %q", got, tc.want)
			}
		})
	}
}

// logBuffer collects a logger's JSON lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records are the logged records with message msg and path p.
func (l *logBuffer) records(t *testing.T, msg, p string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg && rec[observe.KeyPath] == p {
			out = append(out, rec)
		}
	}
	return out
}

// startGRPCStatusApp is a gRPC app ending calls in the ways the gRPC over
// HTTP/2 protocol allows: the health service, and under /meshward.test.Items/
// methods whose name says how they end.
func startGRPCStatusApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		m, _ := grpc.MethodFromServerStream(ss)
		switch path.Base(m) {
		case "NotFoundAfterMessage": // a message, then grpc-status 5 in the trailers
			if err := ss.SendMsg(&healthpb.HealthCheckResponse{}); err != nil {
				return err
			}
			return status.Error(codes.NotFound, "no such item")
		case "NotFoundAfterHeaders": // headers, no message, grpc-status 5 in the trailers
			if err := ss.SendHeader(metadata.Pairs("x-items", "1")); err != nil {
				return err
			}
			return status.Error(codes.NotFound, "no such item")
		case "OKTrailersOnly": // nothing but grpc-status 0 in the headers
			return nil
		case "Code99": // a status no gRPC code has
			return status.Error(codes.Code(99), "made up")
		}
		return status.Error(codes.Unimplemented, "unknown method")
	}))
	hs := health.NewServer()
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestGRPCStatusObserved: a gRPC call through both sidecars carries its
// grpc-status, not just HTTP 200, to the tap event, the access log lines
// and meshward_grpc_responses_total of both sides, whether the status
// came in the trailers or in a trailers-only response, from the app or
// from meshward's own deny.
func TestGRPCStatusObserved(t *testing.T) {
	var evs events
	var logs logBuffer
	log, err := observe.NewLogger(&logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	m := newMesh(t, meshOpts{appAddr: startGRPCStatusApp(t), appProto: ProtocolGRPC, observer: evs.observe, logger: log,
		telemetry: policy.Telemetry{AccessLog: new(true)}})
	m.cat.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
		return policy.Decision{Allow: r.HTTP.Path != "/meshward.test.Items/Denied", Policy: "test", Rule: "no-denied"}
	}))
	cc, err := grpc.NewClient(m.front.UpstreamAddr("catalog").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	for _, tc := range []struct {
		name    string
		method  string
		service string // of the health check request
		code    codes.Code
		want    string
		stream  bool // server streaming: no message is no error
	}{
		{"ok after a message", "/grpc.health.v1.Health/Check", "catalog", codes.OK, "0", false},
		{"ok trailers-only", "/meshward.test.Items/OKTrailersOnly", "", codes.OK, "0", true},
		{"not found trailers-only", "/grpc.health.v1.Health/Check", "nope", codes.NotFound, "5", false},
		{"not found after a message", "/meshward.test.Items/NotFoundAfterMessage", "", codes.NotFound, "5", false},
		{"not found after headers", "/meshward.test.Items/NotFoundAfterHeaders", "", codes.NotFound, "5", false},
		{"denied by meshward", "/meshward.test.Items/Denied", "", codes.PermissionDenied, "7", false},
		{"out of range", "/meshward.test.Items/Code99", "", codes.Code(99), "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"direction": "inbound", "source": frontendID, "destination": catalogID, "grpc_status": tc.want}
			out := map[string]string{"direction": "outbound", "source": frontendID, "destination": catalogID, "grpc_status": tc.want}
			inBefore := counter(t, m.catReg, "meshward_grpc_responses_total", in)
			outBefore := counter(t, m.frontReg, "meshward_grpc_responses_total", out)
			evs.mu.Lock()
			evs.es = nil
			evs.mu.Unlock()

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := callGRPC(ctx, cc, tc.method, tc.service, tc.stream)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("call through the mesh: %v, want code %v", err, tc.code)
			}

			// Tap: the event, and its JSON as /tap streams it.
			var e Event
			waitFor(t, func() bool {
				evs.mu.Lock()
				defer evs.mu.Unlock()
				for _, ev := range evs.es {
					if ev.Path == tc.method {
						e = ev
						return true
					}
				}
				return false
			})
			if e.GRPCStatus != tc.want || e.Status != http.StatusOK || e.Protocol != "grpc" {
				t.Errorf("event: grpc_status %q, status %d, protocol %q; want %q, 200, grpc", e.GRPCStatus, e.Status, e.Protocol, tc.want)
			}
			js, err := json.Marshal(&e)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"grpc_status":"` + tc.want + `"`; !bytes.Contains(js, []byte(want)) {
				t.Errorf("tap JSON %s lacks %s", js, want)
			}

			// Access log of both sides.
			for _, msg := range []string{"inbound request", "outbound request"} {
				var recs []map[string]any
				waitFor(t, func() bool { recs = logs.records(t, msg, tc.method); return len(recs) > 0 })
				if got := recs[len(recs)-1][observe.KeyGRPCStatus]; got != tc.want {
					t.Errorf("%s log line: grpc_status %v, want %q", msg, got, tc.want)
				}
			}

			// Metrics of both sides.
			waitFor(t, func() bool {
				return counter(t, m.catReg, "meshward_grpc_responses_total", in) == inBefore+1 &&
					counter(t, m.frontReg, "meshward_grpc_responses_total", out) == outBefore+1
			})
		})
	}
	// One bucket for what is not a code, none for a code never seen.
	if got := counter(t, m.catReg, "meshward_grpc_responses_total", map[string]string{"grpc_status": "99"}); got != 0 {
		t.Errorf("a series with grpc_status=99 exists (%v)", got)
	}
}

// callGRPC makes one call of method with a health check request, unary
// or server-streaming, and returns its error.
func callGRPC(ctx context.Context, cc *grpc.ClientConn, method, service string, stream bool) error {
	req, res := &healthpb.HealthCheckRequest{Service: service}, &healthpb.HealthCheckResponse{}
	if !stream {
		return cc.Invoke(ctx, method, req, res)
	}
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		if err := s.RecvMsg(res); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// TestGRPCStatusNotForHTTP: a request that is not gRPC has no grpc_status
// in its event, its log line or the gRPC counter.
func TestGRPCStatusNotForHTTP(t *testing.T) {
	var evs events
	var logs logBuffer
	log, err := observe.NewLogger(&logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, observer: evs.observe, logger: log,
		telemetry: policy.Telemetry{AccessLog: new(true)}})
	// A gRPC content type over HTTP/1.1 is not gRPC (that needs HTTP/2).
	req, err := http.NewRequest(http.MethodPost, m.outURL("/plain"), strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitFor(t, func() bool {
		evs.mu.Lock()
		defer evs.mu.Unlock()
		return len(evs.es) > 0
	})
	evs.mu.Lock()
	e := evs.es[0]
	evs.mu.Unlock()
	if e.GRPCStatus != "" {
		t.Errorf("HTTP/1.1 event has grpc_status %q", e.GRPCStatus)
	}
	js, _ := json.Marshal(&e)
	if bytes.Contains(js, []byte("grpc_status")) {
		t.Errorf("tap JSON of an HTTP request: %s", js)
	}
	for _, msg := range []string{"inbound request", "outbound request"} {
		var recs []map[string]any
		waitFor(t, func() bool { recs = logs.records(t, msg, "/plain"); return len(recs) > 0 })
		if v, ok := recs[0][observe.KeyGRPCStatus]; ok {
			t.Errorf("%s log line has grpc_status %v", msg, v)
		}
	}
	if got := counter(t, m.catReg, "meshward_grpc_responses_total", nil) + counter(t, m.frontReg, "meshward_grpc_responses_total", nil); got != 0 {
		t.Errorf("meshward_grpc_responses_total = %v for an HTTP request", got)
	}
	if e.Protocol != "http1" {
		t.Errorf("protocol %q, want http1", e.Protocol)
	}
}

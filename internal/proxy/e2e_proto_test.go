package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/policy"
)

func TestWebSocket(t *testing.T) {
	ws := websocket.Handler(func(c *websocket.Conn) {
		peer := c.Request().Header.Get(PeerIdentityHeader)
		var msg string
		for websocket.Message.Receive(c, &msg) == nil {
			_ = websocket.Message.Send(c, peer+" says "+strings.ToUpper(msg))
		}
	})
	app := newEchoApp(t, false, map[string]http.Handler{"/ws": ws})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	url := "ws://" + m.front.UpstreamAddr("catalog").String() + "/ws"
	c, err := websocket.Dial(url, "", "http://frontend.local/")
	if err != nil {
		t.Fatalf("websocket dial through the mesh: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	for _, in := range []string{"hello", "again"} {
		if err := websocket.Message.Send(c, in); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil {
			t.Fatal(err)
		}
		if want := frontendID + " says " + strings.ToUpper(in); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func startGRPCApp(t testing.TB) (string, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs
}

func TestGRPC(t *testing.T) {
	addr, hs := startGRPCApp(t)
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolGRPC})
	cc, err := grpc.NewClient(m.front.UpstreamAddr("catalog").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// Unary, with a spoofed identity in metadata from the app side.
	var hdr metadata.MD
	res, err := client.Check(metadata.AppendToOutgoingContext(ctx, "x-meshward-peer-identity", paymentsID),
		&healthpb.HealthCheckRequest{Service: "catalog"}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("unary Check through the mesh: %v", err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v", res.GetStatus())
	}
	// Unknown service: the app's own gRPC error passes through intact
	// (a trailers-only response).
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("app error through the mesh: got %v, want NotFound", err)
	}

	// Server streaming: updates arrive while the stream stays open.
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "catalog"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("stream first message: %v", err)
	}
	if first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("first %v", first.GetStatus())
	}
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil {
		t.Fatalf("stream second message: %v", err)
	}
	if second.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("second %v", second.GetStatus())
	}

	// Policy denial is PERMISSION_DENIED, for unary and streaming calls.
	m.cat.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
		return policy.Decision{Allow: r.HTTP.Path != "/grpc.health.v1.Health/Check", Rule: "no-check"}
	}))
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "catalog"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("denied unary: got %v, want PermissionDenied", err)
	}
	m.cat.SetPolicy(nil)
	s2, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "catalog"})
	if err == nil {
		_, err = s2.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("denied stream with no policy: got %v, want PermissionDenied", err)
	}
}

func TestTCP(t *testing.T) {
	addr, conns := tcpEchoApp(t)
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolTCP})
	roundTrip := func(msg string) (string, error) {
		c, err := net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		_ = c.(*net.TCPConn).CloseWrite() // half-close: the app replies after EOF
		b, err := io.ReadAll(c)
		return string(b), err
	}
	big := strings.Repeat("x", 1<<20)
	for _, msg := range []string{"hello", big} {
		got, err := roundTrip(msg)
		if err != nil {
			t.Fatal(err)
		}
		if got != strings.ToUpper(msg) {
			t.Errorf("echo of %d bytes: got %d bytes", len(msg), len(got))
		}
	}
	if got := counter(t, m.catReg, "meshward_tcp_connections_total", map[string]string{"source": frontendID, "decision": "allow"}); got != 2 {
		t.Errorf("tcp connections allowed = %v, want 2", got)
	}

	// A ban closes live TCP streams of that identity.
	live, err := net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	_ = live.SetDeadline(time.Now().Add(testTimeout))
	if _, err := live.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return conns.Load() == 3 }) // reached the app
	m.cat.SetBanned([]spiffeid.ID{spiffeid.RequireFromString(frontendID)})
	if b, err := io.ReadAll(live); err != nil || len(b) != 0 {
		t.Errorf("banned live stream: read %q, %v; want EOF", b, err)
	}
	m.cat.SetBanned(nil)

	// Per-connection policy: deny closes the connection before the app.
	m.cat.SetPolicy(nil)
	before := conns.Load()
	got, _ := roundTrip("denied")
	if got != "" {
		t.Errorf("denied connection got %q", got)
	}
	if conns.Load() != before {
		t.Error("denied connection reached the app")
	}
}

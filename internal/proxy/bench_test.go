package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"meshward.dev/meshward/internal/mtls"
)

// BenchmarkMeshHTTP1 measures one keep-alive HTTP/1.1 request from the app
// through both sidecars (plaintext -> pooled HTTP/2 mTLS -> HTTP/1.1 to the
// app) and back. allocs/op covers the client, both sidecars and the app.
func BenchmarkMeshHTTP1(b *testing.B) {
	app := newEchoApp(b, false, nil)
	m := newMesh(b, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := m.outURL("/bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// BenchmarkGuardScan is the per-byte cost of the smuggling guard on the
// plaintext listener.
func BenchmarkGuardScan(b *testing.B) {
	req := []byte("POST /items HTTP/1.1\r\nHost: catalog\r\nContent-Type: application/json\r\nContent-Length: 2\r\nUser-Agent: bench\r\n\r\n{}")
	g := newGuardConn(nil, nil, nil)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		g.scan(req)
	}
}
func benchSerial(b *testing.B, c *http.Client, url string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// BenchmarkSerial is one request at a time: the latency each hop adds
// (direct to the app, through the inbound sidecar only, through both).
func BenchmarkSerial(b *testing.B) {
	app := newEchoApp(b, false, nil)
	m := newMesh(b, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	b.Run("direct", func(b *testing.B) { benchSerial(b, &http.Client{}, "http://"+app.addr+"/") })
	b.Run("inbound-only", func(b *testing.B) {
		benchSerial(b, h2Client(sidecarTLS(b, m.ca, frontendID, mtls.ALPNHTTP2)), "https://"+m.cat.InboundAddr().String()+"/")
	})
	b.Run("mesh", func(b *testing.B) { benchSerial(b, &http.Client{}, m.outURL("/")) })
}

// BenchmarkMeshGRPC is one unary gRPC call (health Check) from a gRPC
// client through both sidecars to a gRPC app and back, the path that
// reads grpc-status from the response's trailers.
func BenchmarkMeshGRPC(b *testing.B) {
	addr, _ := startGRPCApp(b)
	m := newMesh(b, meshOpts{appAddr: addr, appProto: ProtocolGRPC})
	cc, err := grpc.NewClient(m.front.UpstreamAddr("catalog").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	req := &healthpb.HealthCheckRequest{Service: "catalog"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Check(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

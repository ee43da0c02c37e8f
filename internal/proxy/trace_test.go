package proxy

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestTracing: a request that carries a traceparent gets a client span in
// the calling sidecar and a server span in the called one, in that trace,
// with identities and the decision; the app receives a traceparent whose
// parent is the server span.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() {
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	var appSaw string
	app := newEchoApp(t, false, map[string]http.Handler{"/traced": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appSaw = r.Header.Get("Traceparent")
	})})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, tracer: tp.Tracer("test")})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, m.outURL("/traced"), nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := (&http.Client{Timeout: testTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	m.stop()

	spans := exp.GetSpans()
	var client, server *tracetest.SpanStub
	for i := range spans {
		switch spans[i].SpanKind {
		case trace.SpanKindClient:
			client = &spans[i]
		case trace.SpanKindServer:
			server = &spans[i]
		}
	}
	if client == nil || server == nil {
		t.Fatalf("spans = %d, want a client and a server span", len(spans))
	}
	for _, s := range []*tracetest.SpanStub{client, server} {
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("%s: trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	if client.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("client span's parent = %s, want the app's span", client.Parent.SpanID())
	}
	if server.Parent.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("server span's parent = %s, want the client span %s", server.Parent.SpanID(), client.SpanContext.SpanID())
	}
	want := "00-" + traceID + "-" + server.SpanContext.SpanID().String() + "-01"
	if appSaw != want {
		t.Errorf("app got traceparent %q, want %q", appSaw, want)
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["meshward.source"] != frontendID || attrs["meshward.decision"] != "allow" || attrs["meshward.destination"] != "catalog" {
		t.Errorf("server span attributes = %v", attrs)
	}
}

// TestTracingGRPCStatus: a gRPC call that fails with HTTP status 200 marks
// both spans as errors and carries its grpc-status; a successful one does
// not (Linkerd's classification: grpc-status other than 0 is a failure).
func TestTracingGRPCStatus(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() {
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	m := newMesh(t, meshOpts{appAddr: startGRPCStatusApp(t), appProto: ProtocolGRPC, tracer: tp.Tracer("test")})
	cc, err := grpc.NewClient(m.front.UpstreamAddr("catalog").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, svc := range []string{"catalog", "nope"} { // OK, then NotFound (trailers-only)
		_ = callGRPC(t.Context(), cc, "/grpc.health.v1.Health/Check", svc, false)
	}
	m.stop()
	got := map[string]int{} // "grpc_status error?" -> spans
	for _, s := range exp.GetSpans() {
		gs := ""
		for _, kv := range s.Attributes {
			if kv.Key == "meshward.grpc_status" {
				gs = kv.Value.AsString()
			}
		}
		got[gs+" "+s.Status.Code.String()]++
	}
	if diff := cmp.Diff(map[string]int{"0 Unset": 2, "5 Error": 2}, got); diff != "" {
		t.Errorf("spans by grpc_status and status (-want +got):\n%s", diff)
	}
}

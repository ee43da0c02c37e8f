package proxy

import (
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
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

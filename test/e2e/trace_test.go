//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a tiny OTLP/HTTP trace receiver: it keeps every span.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][]*tracepb.Span // by service.name
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			o.spans[svc] = append(o.spans[svc], ss.Spans...)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(out)
}

func (o *otlpReceiver) find(service string, kind tracepb.Span_SpanKind) *tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans[service] {
		if s.Kind == kind {
			return s
		}
	}
	return nil
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTracesExported: with OTEL_EXPORTER_OTLP_ENDPOINT set, both sidecars
// export a span per request, in the caller's trace, with the identities
// and the decision.
func TestTracesExported(t *testing.T) {
	rcv := &otlpReceiver{spans: map[string][]*tracepb.Span{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	_, _, _, up := twoSidecars(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	waitStatus(t, "http://"+up+"/", 200, 20*time.Second)
	if code, _ := curl(t, "-H", "traceparent: 00-"+traceID+"-00f067aa0ba902b7-01", "http://"+up+"/traced"); code != 200 {
		t.Fatalf("status %d", code)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var traced *tracepb.Span
		rcv.mu.Lock()
		for _, s := range rcv.spans["api-proxy"] {
			if attr(s, "url.path") == "/traced" && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				traced = s
			}
		}
		rcv.mu.Unlock()
		client := rcv.find("client-proxy", tracepb.Span_SPAN_KIND_CLIENT)
		if traced != nil && client != nil {
			if got := hexID(traced.TraceId); got != traceID {
				t.Fatalf("server span trace %s, want %s", got, traceID)
			}
			if attr(traced, "meshward.source") != "spiffe://e2e.local/ns/default/sa/client" || attr(traced, "meshward.decision") != "allow" {
				t.Fatalf("server span attributes: %v", traced.Attributes)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server span for /traced and client span within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, len(b)*2)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

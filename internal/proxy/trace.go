package proxy

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"meshward.dev/meshward/internal/observe"
)

// traceContext propagates W3C traceparent/tracestate.
var traceContext propagation.TraceContext

// startSpan continues the trace the request carries (if any) with a new
// span, and rewrites the request's traceparent so the next hop (the app
// inbound, the upstream outbound) continues it under this span.
func (p *Proxy) startSpan(r *http.Request, name string, kind trace.SpanKind) (*http.Request, trace.Span) {
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	// The name holds the method and, like the attributes, goes out in
	// OTLP protobuf: valid UTF-8 only (observe.Printable).
	ctx, span := p.cfg.Tracer.Start(ctx, observe.Printable(name), trace.WithSpanKind(kind),
		trace.WithAttributes(attribute.String("http.request.method", printableClone(r.Method)), attribute.String("url.path", printableClone(r.URL.Path))))
	traceContext.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r.WithContext(ctx), span
}

// printableClone is s made valid UTF-8, never sharing s's memory (a
// request's strings pin its whole head).
func printableClone(s string) string {
	if p := observe.Printable(s); p != s {
		return p
	}
	return strings.Clone(s)
}

// endSpan records the outcome on span and ends it.
func endSpan(span trace.Span, e *Event) {
	span.SetAttributes(
		attribute.String("meshward.source", e.Source),
		attribute.String("meshward.destination", e.Destination),
		attribute.String("meshward.decision", e.Decision),
		attribute.String("meshward.rule", e.Rule),
		attribute.Int("http.response.status_code", e.Status),
	)
	if e.GRPCStatus != "" {
		span.SetAttributes(attribute.String("meshward.grpc_status", e.GRPCStatus))
	}
	if e.Status >= 500 || e.Status == 0 || grpcFailed(e.GRPCStatus) {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

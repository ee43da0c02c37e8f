package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

// serveHTTP is the inbound per-request path: refuse smuggling and banned
// callers, normalize the path, ask policy, set the peer identity header,
// forward to the app.
func (in *inbound) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := in.p
	start := p.now()
	ci := connInfoFrom(r.Context())
	if ci == nil {
		httpError(w, http.StatusInternalServerError, "meshward: no peer")
		return
	}
	markHandled(r.Context())
	grpc := isGRPC(r)
	sw := getStatusWriter(w)
	defer putStatusWriter(sw)
	decision, rule := "allow", ""
	var dec policy.Decision
	tel := p.telemetry()
	var span trace.Span
	if p.cfg.Tracer != nil && tel.tracing {
		r, span = p.startSpan(r, "inbound "+r.Method, trace.SpanKindServer)
	}
	defer func() {
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		proto := protoLabel(r, grpc)
		if tel.metrics {
			p.m.request(ci.peerStr, p.self.String(), proto, code, decision)
		}
		// The body, and with it the trailers, went out: grpc-status is
		// known now.
		var gs string
		var gsAttr slog.Attr // empty: left out of the log line
		if grpc {
			gs = grpcStatus(sw.Header())
			gsAttr = slog.String(observe.KeyGRPCStatus, gs)
			if tel.metrics {
				p.m.grpcResponse("inbound", ci.peerStr, p.self.String(), gs)
			}
		}
		if decision != "allow" {
			p.m.policyDenies.WithLabelValues(dec.Policy, rule, decision).Inc()
		}
		if tel.metrics {
			p.m.duration("inbound", proto).Observe(p.now().Sub(start).Seconds())
		}
		if p.accessOn(r.Context(), tel, decision) {
			p.log.LogAttrs(r.Context(), slog.LevelInfo, "inbound request",
				slog.String(observe.KeyPeer, ci.peerStr),
				slog.String(observe.KeyMethod, r.Method),
				slog.String(observe.KeyPath, r.URL.Path),
				slog.Int(observe.KeyStatus, code),
				gsAttr,
				slog.String(observe.KeyDecision, decision),
				slog.String(observe.KeyRule, rule),
				slog.Duration(observe.KeyDuration, p.now().Sub(start)))
		}
		if p.cfg.Observer != nil || span != nil {
			e := &Event{
				Time: start, Direction: "inbound", Protocol: proto, Source: ci.peerStr, Destination: p.cfg.Service,
				Port: p.dest.Port, Method: strings.Clone(r.Method), Path: strings.Clone(r.URL.Path), Status: code, GRPCStatus: gs,
				Duration: p.now().Sub(start), Decision: decision, Policy: dec.Policy, Rule: rule, Mode: dec.Mode,
			}
			p.observe(e)
			if span != nil {
				endSpan(span, e)
			}
		}
	}()

	if r.ProtoMajor == 1 && ci.guard != nil && ci.guard.conflict() {
		decision, rule = "deny", "request-smuggling"
		sw.code = http.StatusBadRequest
		refuseSmuggling(w)
		return
	}
	if p.isBanned(ci.peer) {
		decision, rule = "deny", "banned"
		deny(sw, grpc, "identity banned")
		return
	}
	// One identity's requests hold at most its budget of header bytes at
	// a time, whatever number of connections and streams it opens.
	if n := headBytes(r); in.heads.acquire(ci.peer, n) {
		defer in.heads.release(ci.peer, n)
	} else {
		decision, rule = "deny", ruleHeaderBudget
		p.m.limitRejections.WithLabelValues(limitPeerHeaders).Inc()
		sw.Header().Set("Retry-After", "1")
		httpError(sw, http.StatusTooManyRequests, "meshward: too many request header bytes in flight from this caller")
		return
	}
	// Every copy of a trust header is stripped, under any spelling that
	// folds to it (headers.go).
	hs := scanHeaders(r.Header)
	if hasToken(r.Header["Connection"], PeerIdentityHeader) {
		// Hop-by-hop removal would delete the identity header meshward sets
		// below: the app would see a caller without an identity.
		decision, rule = "deny", "connection-option"
		httpError(sw, http.StatusBadRequest, "meshward: Connection must not name "+PeerIdentityHeader)
		return
	}
	// Upgrades: an h2c one never (its streams would pass no policy),
	// websocket and what the service allows after the upgrade request
	// passed policy below.
	if up := upgradeRefusal(r.Header["Upgrade"], p.cfg.AllowUpgrades); up != "" || hs.http2Settings {
		if hs.http2Settings {
			up = ruleH2CUpgrade
		}
		decision, rule = "deny", up
		refuseUpgrade(sw, up)
		return
	}
	if hs.override && p.refusesOverrides() {
		decision, rule = "deny", ruleOverrideHeader
		httpError(sw, http.StatusBadRequest, "meshward: method and URL override headers are refused (MeshConfig refuseOverrideHeaders)")
		return
	}
	norm, err := policy.NormalizePath(requestPath(r))
	if err != nil {
		decision, rule = "deny", "ambiguous-path"
		httpError(sw, http.StatusBadRequest, "meshward: ambiguous request path")
		return
	}
	d := p.decide(&policy.Request{
		Source:      ci.peer,
		Destination: p.dest,
		HTTP:        &policy.HTTPRequest{Method: r.Method, Path: norm, Headers: r.Header},
	})
	dec, rule = d, d.Rule
	if !d.Allow {
		decision = "deny"
		p.log.Info("request denied", slog.String(observe.KeyPeer, ci.peerStr), slog.String(observe.KeyPolicy, d.Policy),
			slog.String(observe.KeyRule, d.Rule), slog.String(observe.KeyMethod, r.Method), slog.String(observe.KeyPath, norm))
		deny(sw, grpc, "denied by policy")
		return
	}
	if d.WouldDeny {
		decision = "audit-deny"
	}
	setPath(r.URL, norm)
	r.Header.Set(PeerIdentityHeader, ci.peerStr)
	abort := false
	if in.appPool != nil && h1Eligible(r) {
		abort = in.forwardApp(sw, r)
	} else {
		in.app.ServeHTTP(sw, r)
	}
	if r.ProtoMajor == 2 && errors.Is(r.Context().Err(), context.Canceled) && !sw.done {
		if ci.noteReset(p.now(), p.cfg.Limits.MaxResetsPerConnMinute) {
			p.m.limitRejections.WithLabelValues(limitRapidReset).Inc()
			p.log.Warn("too many cancelled streams, closing connection", slog.String(observe.KeyPeer, ci.peerStr))
			_ = ci.conn.Close()
		}
	}
	if abort {
		panic(http.ErrAbortHandler) // the app cut the body: do not end it cleanly
	}
}

// forwardApp sends r to an HTTP/1.1 app with the forwarder; abort reports a
// response cut after its head went out.
func (in *inbound) forwardApp(w http.ResponseWriter, r *http.Request) (abort bool) {
	p := in.p
	removeHopHeaders(r.Header)
	host := r.Host
	if host == "" {
		host = p.cfg.AppAddr
	}
	// The response-header timeout also bounds the wait for the app: the
	// fast HTTP/1.1 loop does not notice a caller that went away meanwhile.
	x, err := in.appPool.roundTrip(r.Context(), p.cfg.AppAddr, r, host, p.cfg.Timeouts.ResponseHeader)
	if err != nil {
		p.log.Debug("app request failed", slog.Any(observe.KeyError, err))
		switch {
		case r.Context().Err() != nil:
		case clientBodyError(err):
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusBadRequest, "meshward: incomplete request body")
		case errors.Is(err, context.DeadlineExceeded):
			httpError(w, http.StatusGatewayTimeout, "meshward: application did not answer in time")
		default:
			httpError(w, http.StatusBadGateway, "meshward: application unavailable")
		}
		return false
	}
	if x.respond(w) != nil {
		return true
	}
	requestDone(r)
	return false
}

// requestPath is the path as it came on the wire, still escaped.
func requestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.EscapedPath()
}

// setPath makes u carry the normalized (escaped) path norm.
func setPath(u *url.URL, norm string) {
	if u.RawPath == "" && u.Path == norm {
		return
	}
	dec, err := url.PathUnescape(norm)
	if err != nil { // NormalizePath output always unescapes
		dec = norm
	}
	u.Path, u.RawPath = dec, norm
}

// deny answers a refused request: gRPC PERMISSION_DENIED as a trailers-only
// response, 403 otherwise.
func deny(w http.ResponseWriter, grpc bool, msg string) {
	if grpc {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "7") // PERMISSION_DENIED
		h.Set("Grpc-Message", "meshward: "+msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	httpError(w, http.StatusForbidden, "meshward: "+msg)
}

func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func protoLabel(r *http.Request, grpc bool) string {
	switch {
	case grpc:
		return "grpc"
	case r.ProtoMajor == 2:
		return "http2"
	}
	return "http1"
}

// trailersOnly keeps a gRPC trailers-only response (status in the headers,
// no body) in one HEADERS frame with END_STREAM: ReverseProxy would
// otherwise flush the headers early and send an empty body without
// trailers, which gRPC clients read as an internal error.
func trailersOnly(res *http.Response) error {
	if res.ContentLength == -1 && res.Body == http.NoBody && res.Header.Get("Grpc-Status") != "" {
		res.ContentLength = 0
	}
	return nil
}

// statusWriter remembers the status code for logs and metrics; Unwrap keeps
// Flush and Hijack reachable through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
	done bool
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func getStatusWriter(w http.ResponseWriter) *statusWriter {
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter, sw.code, sw.done = w, 0, false
	return sw
}

func putStatusWriter(sw *statusWriter) {
	sw.ResponseWriter = nil
	statusWriters.Put(sw)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 || code/100 != 1 {
		w.code = code
	}
	if code/100 != 1 {
		w.done = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.done = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufPool recycles ReverseProxy copy buffers.
type bufPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufPool) Get() []byte  { return *(copyBufs.Get().(*[]byte)) }
func (bufPool) Put(b []byte) { copyBufs.Put(&b) }

// refuseSmuggling answers 400 and closes the connection at once, without
// reading the rest of a body whose framing cannot be trusted.
func refuseSmuggling(w http.ResponseWriter) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusBadRequest, smugglingMsg)
		return
	}
	defer conn.Close()
	_, _ = brw.WriteString("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
		strconv.Itoa(len(smugglingMsg)+1) + "\r\n\r\n" + smugglingMsg + "\n")
	_ = brw.Flush()
}

const smugglingMsg = "meshward: conflicting Content-Length and Transfer-Encoding"

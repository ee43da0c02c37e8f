package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/otel/trace"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/observe"
)

// errBannedServer refuses a server whose identity the control plane banned.
var errBannedServer = errors.New("server identity is banned")

// refuseBannedServer wraps the outbound side's server check: a banned
// server identity is refused at the handshake, before this sidecar sends
// its client certificate, even while an endpoint of it is still known.
func (p *Proxy) refuseBannedServer(authorize mtls.Authorizer) mtls.Authorizer {
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if p.isBanned(id) {
			return fmt.Errorf("%w: %w: %s", mtls.ErrUnauthorized, errBannedServer, id)
		}
		return authorize(id, chains)
	}
}

// outListener is one plaintext loopback listener for the app: an upstream's
// (HTTP or TCP) or the HTTP proxy port (up == nil).
type outListener struct {
	p    *Proxy
	ln   net.Listener
	up   *upstream
	srv  *http.Server  // nil for TCP; takes what fast hands off
	fast *h1Server     // the HTTP/1.1 loop (h1server.go)
	hand *chanListener // fast -> srv
	wg   sync.WaitGroup
	rp   *httputil.ReverseProxy
	// stopped is closed when run's accept loop has returned: only then may
	// drain wait on wg (a WaitGroup must not grow while it is waited on).
	stopped chan struct{}
}

type upstreamKey struct{}

func (p *Proxy) newOutListener(ln net.Listener, up *upstream) *outListener {
	o := &outListener{p: p, ln: ln, up: up, stopped: make(chan struct{})}
	if up != nil && up.proto == ProtocolTCP {
		return o
	}
	o.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "https"
			pr.Out.Host = pr.In.Host
		},
		Transport:      roundTripper{p: p},
		BufferPool:     bufPool{},
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ModifyResponse: trailersOnly,
		ErrorHandler:   p.outboundError,
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true) // h2c prior knowledge, e.g. gRPC clients
	o.srv = &http.Server{
		Handler:           http.HandlerFunc(o.serveHTTP),
		Protocols:         protos,
		ReadHeaderTimeout: p.cfg.Timeouts.ReadHeader,
		IdleTimeout:       p.cfg.Timeouts.Idle,
		MaxHeaderBytes:    p.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: p.cfg.Limits.MaxConcurrentStreams,
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if g := guardOf(c); g != nil {
				return context.WithValue(ctx, guardKey{}, g)
			}
			return ctx
		},
		ConnState: trackLimits,
	}
	o.hand = newChanListener(ln.Addr())
	o.fast = newH1Server(o.serveHTTP, o.hand, p.cfg.Timeouts, p.cfg.Limits, true, p.limitHit, p.log)
	return o
}

type guardKey struct{}

func (o *outListener) run(ctx context.Context) error {
	defer close(o.stopped)
	go func() {
		<-ctx.Done()
		_ = o.ln.Close()
	}()
	if o.srv != nil {
		gl := &guardListener{Listener: o.ln, onAccept: func(c net.Conn) (func(), bool) {
			return o.p.outConn.acquire(zeroID, c, 0)
		}, onLimit: o.p.limitHit}
		o.wg.Go(func() { _ = o.srv.Serve(o.hand) })
		for {
			c, err := gl.Accept()
			if err != nil {
				if isClosed(err) || ctx.Err() != nil {
					return nil
				}
				o.p.log.Warn("outbound accept failed", slog.Any(observe.KeyError, err))
				select { // e.g. out of file descriptors: do not spin
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			o.wg.Go(func() { o.fast.serve(context.Background(), c.(*guardConn)) })
		}
	}
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				return nil
			}
			o.p.log.Warn("outbound accept failed", slog.Any(observe.KeyError, err))
			continue
		}
		release, _ := o.p.outConn.acquire(zeroID, c, 0)
		o.wg.Go(func() {
			defer release()
			o.serveTCP(ctx, c)
		})
	}
}

func (o *outListener) drain(ctx context.Context) {
	_ = o.ln.Close()
	if o.srv != nil {
		var g sync.WaitGroup
		g.Go(func() { o.fast.shutdown(ctx) })
		g.Go(func() { _ = o.srv.Shutdown(ctx) })
		g.Wait()
		_ = o.srv.Close()
		_ = o.hand.Close()
	}
	<-o.stopped // the listener is closed: the accept loop returns
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// serveHTTP is the outbound per-request path.
func (o *outListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := o.p
	start := p.now()
	markHandled(r.Context())
	if r.ProtoMajor == 1 {
		if g, _ := r.Context().Value(guardKey{}).(*guardConn); g != nil && g.conflict() {
			refuseSmuggling(w)
			p.m.requests.WithLabelValues(p.self.String(), "", "http1", "400", "deny").Inc()
			return
		}
	}
	if r.Method == http.MethodConnect {
		httpError(w, http.StatusMethodNotAllowed, "meshward: CONNECT is not supported")
		return
	}
	if h2cUpgrade(r.Header) { // always refused, as inbound (headers.go)
		refuseUpgrade(w, ruleH2CUpgrade)
		return
	}
	up := o.up
	if up == nil { // HTTP proxy port: the service is the host name
		host := r.URL.Host
		if host == "" {
			host = r.Host
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		up = (*p.upstreams.Load())[host]
		if up == nil || up.proto == ProtocolTCP {
			httpError(w, http.StatusBadGateway, "meshward: unknown service "+strconv.Quote(host))
			return
		}
	}
	if p.isBanned(up.id) {
		// Pooled connections to it stay unused too: nothing of the
		// request (credentials included) reaches a banned server.
		if grpc := isGRPC(r); p.telemetry().metrics {
			p.m.request(p.self.String(), up.id.String(), protoLabel(r, grpc), http.StatusForbidden, "")
			if grpc {
				p.m.grpcResponse("outbound", p.self.String(), up.id.String(), grpcStatusNone)
			}
		}
		httpError(w, http.StatusForbidden, "meshward: upstream "+up.id.String()+" is banned")
		return
	}
	r.Header.Del(PeerIdentityHeader) // the app cannot claim an identity
	tel := p.telemetry()
	var span trace.Span
	if p.cfg.Tracer != nil && tel.tracing {
		r, span = p.startSpan(r, "outbound "+r.Method, trace.SpanKindClient)
	}
	grpc := isGRPC(r)
	sw := getStatusWriter(w)
	defer putStatusWriter(sw)
	abort := false
	if handled := false; up.proto == ProtocolHTTP && r.ProtoMajor == 1 && h1Eligible(r) {
		if handled, abort = o.forwardH1(sw, r, up); !handled {
			o.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), upstreamKey{}, up)))
		}
	} else {
		o.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), upstreamKey{}, up)))
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK
	}
	proto := protoLabel(r, grpc)
	if tel.metrics {
		p.m.request(p.self.String(), up.id.String(), proto, code, "")
	}
	var gs string
	var gsAttr slog.Attr // empty: left out of the log line
	if grpc {
		gs = grpcStatus(sw.Header()) // after the body: the trailers are in
		gsAttr = slog.String(observe.KeyGRPCStatus, gs)
		if tel.metrics {
			p.m.grpcResponse("outbound", p.self.String(), up.id.String(), gs)
		}
	}
	if tel.metrics {
		p.m.duration("outbound", proto).Observe(p.now().Sub(start).Seconds())
	}
	if p.accessOn(r.Context(), tel, "") {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "outbound request",
			slog.String("upstream", up.service),
			slog.String(observe.KeyMethod, r.Method),
			slog.String(observe.KeyPath, r.URL.Path),
			slog.Int(observe.KeyStatus, code),
			gsAttr,
			slog.Duration(observe.KeyDuration, p.now().Sub(start)))
	}
	if p.cfg.Observer != nil || span != nil {
		e := &Event{Time: start, Direction: "outbound", Protocol: proto, Source: p.self.String(), Destination: up.service,
			Method: strings.Clone(r.Method), Path: strings.Clone(r.URL.Path), Status: code, GRPCStatus: gs, Duration: p.now().Sub(start)}
		p.observe(e)
		if span != nil {
			endSpan(span, e)
		}
	}
	if abort {
		panic(http.ErrAbortHandler) // the upstream cut the body: do not end it cleanly
	}
}

// forwardH1 carries an HTTP/1.1 request over a pooled http/1.1 mTLS
// connection (forward.go), with the balancing, ejection and retry of the
// HTTP/2 path. handled is false (nothing written) when every connection
// allowed to the picked endpoint is busy: the caller takes HTTP/2.
func (o *outListener) forwardH1(w http.ResponseWriter, r *http.Request, u *upstream) (handled, abort bool) {
	p := o.p
	removeHopHeaders(r.Header)
	host := r.Host
	var skip *endpoint
	var lastErr error
	for attempt := 0; ; attempt++ {
		ep := u.eps.Load().pick(p.now(), skip)
		if ep == nil {
			if lastErr == nil {
				lastErr = errNoEndpoints
			}
			p.outboundError(w, r, lastErr)
			return true, false
		}
		if host == "" {
			host = ep.addr
		}
		ep.inflight.Add(1)
		x, err := u.pool.roundTrip(r.Context(), ep.addr, r, host, p.cfg.Timeouts.ResponseHeader)
		if err == nil {
			aerr := x.respond(w)
			ep.inflight.Add(-1)
			if aerr == nil {
				requestDone(r)
			}
			return true, aerr != nil
		}
		ep.inflight.Add(-1)
		if errors.Is(err, errPoolFull) {
			if attempt == 0 {
				return false, false
			}
			p.outboundError(w, r, lastErr)
			return true, false
		}
		if r.Context().Err() != nil {
			return true, false
		}
		if clientBodyError(err) {
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusBadRequest, "meshward: incomplete request body")
			return true, false
		}
		ep.eject(p.now(), p.cfg.Timeouts.Eject)
		p.log.Debug("endpoint ejected", slog.String(observe.KeyService, u.service), slog.String(observe.KeyAddr, ep.addr),
			slog.Any(observe.KeyError, err))
		if attempt > 0 || !retryable(r) {
			p.outboundError(w, r, err)
			return true, false
		}
		skip, lastErr = ep, err
	}
}

func (p *Proxy) outboundError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	p.log.Debug("upstream request failed", slog.Any(observe.KeyError, err))
	code := http.StatusBadGateway
	if errors.Is(err, errNoEndpoints) {
		code = http.StatusServiceUnavailable
	} else if errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	if isGRPC(r) {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "14") // UNAVAILABLE
		h.Set("Grpc-Message", "meshward: upstream unavailable")
		w.WriteHeader(http.StatusOK)
		return
	}
	httpError(w, code, "meshward: upstream unavailable")
}

// roundTripper picks an endpoint of the request's upstream, sends the
// request over the pooled mTLS transport, ejects an endpoint that fails and
// retries an idempotent request without a body once on another endpoint.
type roundTripper struct{ p *Proxy }

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _ := req.Context().Value(upstreamKey{}).(*upstream)
	if u == nil {
		return nil, errNoEndpoints
	}
	upgrade := req.Header.Get("Upgrade") != ""
	var skip *endpoint
	var lastErr error
	for attempt := 0; ; attempt++ {
		ep := u.eps.Load().pick(rt.p.now(), skip)
		if ep == nil {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoEndpoints
		}
		res, err := rt.send(u, ep, req, upgrade)
		if err == nil {
			return res, nil
		}
		if req.Context().Err() != nil {
			return nil, err
		}
		ep.eject(rt.p.now(), rt.p.cfg.Timeouts.Eject)
		rt.p.log.Debug("endpoint ejected", slog.String(observe.KeyService, u.service), slog.String(observe.KeyAddr, ep.addr),
			slog.Any(observe.KeyError, err))
		if attempt > 0 || !retryable(req) {
			return nil, err
		}
		skip, lastErr = ep, err
	}
}

func (rt roundTripper) send(u *upstream, ep *endpoint, req *http.Request, upgrade bool) (*http.Response, error) {
	out := *req // shallow copy: only the URL changes per attempt
	url := *req.URL
	url.Host = ep.poolHost(upgrade)
	out.URL = &url
	ep.inflight.Add(1)
	if upgrade {
		url.Scheme = "https"
		res, err := u.h1.RoundTrip(&out)
		ep.inflight.Add(-1)
		return res, err
	}
	ctx := req.Context()
	var stop func() bool
	if !isGRPC(req) && rt.p.cfg.Timeouts.ResponseHeader > 0 {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		t := time.AfterFunc(rt.p.cfg.Timeouts.ResponseHeader, func() { cancel(context.DeadlineExceeded) })
		stop = t.Stop
		out = *out.WithContext(ctx)
		res, err := u.h2.RoundTrip(&out)
		stop()
		if err != nil {
			ep.inflight.Add(-1)
			cancel(nil)
			if c := context.Cause(ctx); errors.Is(c, context.DeadlineExceeded) {
				return nil, c
			}
			return nil, err
		}
		res.Body = &trackedBody{ReadCloser: res.Body, done: func() { ep.inflight.Add(-1); cancel(nil) }}
		return res, nil
	}
	res, err := u.h2.RoundTrip(&out)
	if err != nil {
		ep.inflight.Add(-1)
		return nil, err
	}
	res.Body = &trackedBody{ReadCloser: res.Body, done: func() { ep.inflight.Add(-1) }}
	return res, nil
}

// retryable: idempotent methods without a body may be sent again.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody
}

// trackedBody runs done once when the response body is closed.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// serveTCP carries one app connection to an upstream sidecar.
func (o *outListener) serveTCP(ctx context.Context, c net.Conn) {
	p, u := o.p, o.up
	start := p.now()
	if p.isBanned(u.id) {
		p.m.tcpConns.WithLabelValues(p.self.String(), u.id.String(), "banned").Inc()
		p.log.Warn("upstream identity is banned", slog.String(observe.KeyService, u.service), slog.String(observe.KeySPIFFEID, u.id.String()))
		_ = c.Close()
		return
	}
	var skip *endpoint
	var up *tls.Conn
	var ep *endpoint
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		ep = u.eps.Load().pick(p.now(), skip)
		if ep == nil {
			break
		}
		up, err = u.dialTLS(ctx, "tcp", ep.addr, u.tcp)
		if err == nil {
			break
		}
		ep.eject(p.now(), p.cfg.Timeouts.Eject)
		skip = ep
	}
	if up == nil {
		p.m.tcpConns.WithLabelValues(p.self.String(), u.id.String(), "error").Inc()
		p.log.Warn("upstream unreachable", slog.String(observe.KeyService, u.service), slog.Any(observe.KeyError, err))
		_ = c.Close()
		return
	}
	ep.inflight.Add(1)
	defer ep.inflight.Add(-1)
	p.m.tcpConns.WithLabelValues(p.self.String(), u.id.String(), "").Inc()
	tx, rx := pipe(up, c)
	p.m.tcpBytes.WithLabelValues("to_upstream").Add(float64(tx))
	p.m.tcpBytes.WithLabelValues("from_upstream").Add(float64(rx))
	if p.accessOn(ctx, p.telemetry(), "") {
		p.log.LogAttrs(ctx, slog.LevelInfo, "outbound connection",
			slog.String(observe.KeyService, u.service),
			slog.String(observe.KeyAddr, ep.addr),
			slog.Int64("bytes_to_upstream", tx), slog.Int64("bytes_from_upstream", rx),
			slog.Duration(observe.KeyDuration, p.now().Sub(start)))
	}
}

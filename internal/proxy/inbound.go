package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/observe"
)

// inbound terminates mTLS from other sidecars and forwards to the app.
type inbound struct {
	p     *Proxy
	ln    net.Listener
	tls   *tls.Config
	conns *connTracker

	h2ln, h1ln *chanListener
	h2srv      *http.Server // HTTP/2 over *tls.Conn
	h1srv      *http.Server // HTTP/1.1 the fast loop hands off (Upgrade, chunked, ...)
	h1fast     *h1Server    // HTTP/1.1 over guarded conns
	h2info     sync.Map     // *tls.Conn -> *connInfo, for h2srv's ConnContext
	// stopped is closed when run's accept loop has returned: only then may
	// drain wait on wg (a WaitGroup must not grow while it is waited on).
	stopped  chan struct{}
	tcpMu    sync.Mutex
	tcpConns map[*connInfo]struct{}
	heads    *headerBudget // header bytes in flight per peer identity

	app      *httputil.ReverseProxy
	appPool  *h1Pool // HTTP/1.1 apps: the forwarder's keep-alive connections
	appClose func()
	wg       sync.WaitGroup // per-connection goroutines
}

func newInbound(p *Proxy, ln net.Listener) *inbound {
	in := &inbound{p: p, ln: ln, tls: p.tlsConfigServer(), conns: newConnTracker(), tcpConns: map[*connInfo]struct{}{}, stopped: make(chan struct{}),
		heads: newHeaderBudget(p.cfg.Limits.MaxHeaderBytesPerPeer)}
	in.h2ln = newChanListener(ln.Addr())
	in.h1ln = newChanListener(ln.Addr())
	lim, to := p.cfg.Limits, p.cfg.Timeouts
	base := func() *http.Server {
		return &http.Server{
			Handler:           http.HandlerFunc(in.serveHTTP),
			ReadHeaderTimeout: to.ReadHeader,
			IdleTimeout:       to.Idle,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams:      lim.MaxConcurrentStreams,
				MaxDecoderHeaderTableSize: 4096,
				CountError: func(errType string) {
					p.m.limitRejections.WithLabelValues(limitH2Protocol).Inc()
					p.log.Debug("http2 protocol error", slog.String(observe.KeyReason, errType))
				},
			},
		}
	}
	in.h2srv = base()
	in.h2srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if v, ok := in.h2info.Load(c); ok {
			return withConnInfo(ctx, v.(*connInfo))
		}
		return ctx
	}
	in.h2srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			if v, ok := in.h2info.LoadAndDelete(c); ok {
				v.(*connInfo).release()
			}
		}
	}
	in.h1srv = base()
	in.h1srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // HTTP/1.1 only
	in.h1srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if g := guardOf(c); g != nil && g.ci != nil {
			return context.WithValue(withConnInfo(ctx, g.ci), guardKey{}, g)
		}
		return ctx
	}
	in.h1srv.ConnState = trackLimits
	in.h1fast = newH1Server(in.serveHTTP, in.h1ln, to, lim, false, p.limitHit, p.log)
	in.app, in.appClose = in.newAppProxy()
	if p.cfg.AppProtocol == ProtocolHTTP {
		dialer := &net.Dialer{Timeout: to.Connect}
		in.appPool = newH1Pool(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}, p.now, to.Idle/2, 256, 0)
		closeRP := in.appClose
		in.appClose = func() { closeRP(); in.appPool.closeIdle(true) }
	}
	return in
}

// newAppProxy forwards to the local app in the protocol it speaks.
func (in *inbound) newAppProxy() (*httputil.ReverseProxy, func()) {
	p := in.p
	addr := p.cfg.AppAddr
	dialer := &net.Dialer{Timeout: p.cfg.Timeouts.Connect}
	var rt http.RoundTripper
	var closeIdle func()
	scheme := "http"
	switch p.cfg.AppProtocol {
	case ProtocolHTTP2, ProtocolGRPC:
		t := &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			ReadIdleTimeout: 30 * time.Second,
		}
		rt, closeIdle = t, t.CloseIdleConnections
	default:
		t := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       p.cfg.Timeouts.Idle,
			DisableCompression:    true,
			ExpectContinueTimeout: time.Second,
		}
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP1(true)
		rt, closeIdle = t, t.CloseIdleConnections
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host
		},
		Transport:      rt,
		BufferPool:     bufPool{},
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ModifyResponse: trailersOnly,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Debug("app request failed", slog.Any(observe.KeyError, err))
			if r.Context().Err() != nil {
				return // the caller went away
			}
			httpError(w, http.StatusBadGateway, "meshward: application unavailable")
		},
	}
	return rp, closeIdle
}

// run accepts connections until ctx is done.
func (in *inbound) run(ctx context.Context) error {
	defer close(in.stopped)
	var g sync.WaitGroup
	g.Go(func() { _ = in.h2srv.Serve(in.h2ln) })
	g.Go(func() { _ = in.h1srv.Serve(in.h1ln) })
	go func() {
		<-ctx.Done()
		_ = in.ln.Close()
	}()
	in.p.m.activeConns.WithLabelValues("inbound")
	for {
		c, err := in.ln.Accept()
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				break
			}
			in.p.log.Warn("inbound accept failed", slog.Any(observe.KeyError, err))
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		in.wg.Go(func() { in.handle(ctx, c) })
	}
	g.Wait()
	return nil
}

// handle runs the handshake, the identity checks and the per-peer limit,
// then hands the connection to the server for its ALPN protocol.
func (in *inbound) handle(ctx context.Context, raw net.Conn) {
	p := in.p
	tc := tls.Server(raw, in.tls)
	hctx, cancel := context.WithTimeout(ctx, p.cfg.Timeouts.Handshake)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		p.handshakeFailed("inbound", raw.RemoteAddr(), err)
		_ = raw.Close()
		return
	}
	cs := tc.ConnectionState()
	peer, err := mtls.PeerID(cs)
	if err != nil { // cannot happen after VerifyConnection
		_ = tc.Close()
		return
	}
	if p.isBanned(peer) {
		p.m.handshakeFailures.WithLabelValues("inbound", "banned").Inc()
		p.log.Info("banned identity refused", slog.String(observe.KeySPIFFEID, peer.String()))
		_ = tc.Close()
		return
	}
	release, ok := in.conns.acquire(peer, tc, p.cfg.Limits.MaxConnsPerPeer)
	if !ok {
		p.m.limitRejections.WithLabelValues(limitConnsPerPeer).Inc()
		p.log.Warn("connection limit per peer reached", slog.String(observe.KeySPIFFEID, peer.String()),
			slog.Int("limit", p.cfg.Limits.MaxConnsPerPeer))
		_ = tc.Close()
		return
	}
	gauge := p.m.activeConns.WithLabelValues("inbound")
	gauge.Inc()
	ci := &connInfo{peer: peer, peerStr: peer.String(), conn: tc}
	ci.release = func() { release(); gauge.Dec() }
	switch cs.NegotiatedProtocol {
	case mtls.ALPNHTTP2:
		in.h2info.Store(tc, ci)
		if !in.h2ln.push(tc) {
			in.h2info.Delete(tc)
			_ = tc.Close()
			ci.release()
		}
	case mtls.ALPNHTTP1:
		g := newGuardConn(tc, ci, ci.release)
		g.onLimit = p.limitHit
		ci.guard = g
		in.h1fast.serve(withConnInfo(context.Background(), ci), g)
	case mtls.ALPNTCP:
		in.serveTCP(ctx, ci)
	default:
		p.m.handshakeFailures.WithLabelValues("inbound", mtls.ReasonProtocol).Inc()
		_ = tc.Close()
		ci.release()
	}
}

// drain stops the servers gracefully, then closes what is left.
func (in *inbound) drain(ctx context.Context) {
	_ = in.ln.Close()
	var g sync.WaitGroup
	g.Go(func() { _ = in.h2srv.Shutdown(ctx) })
	g.Go(func() { _ = in.h1srv.Shutdown(ctx) })
	g.Go(func() { in.h1fast.shutdown(ctx) })
	g.Go(func() { waitEmpty(ctx, in.conns) })
	g.Wait()
	_ = in.h2srv.Close()
	_ = in.h1srv.Close()
	in.conns.closeAll()
	<-in.stopped // the listener is closed: the accept loop returns
	in.wg.Wait()
	in.appClose()
}

// closeBannedTCP closes live TCP streams of identities that are now banned
// (HTTP connections are refused on their next request).
func (in *inbound) closeBannedTCP(banned map[spiffeid.ID]struct{}) {
	in.tcpMu.Lock()
	defer in.tcpMu.Unlock()
	for ci := range in.tcpConns {
		if _, ok := banned[ci.peer]; ok {
			_ = ci.conn.Close()
		}
	}
}

package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

// Decider is the compiled policy as the proxy uses it (*policy.Engine).
type Decider interface {
	Decide(*policy.Request) policy.Decision
}

// deciderBox holds the policy and what the proxy reads from its
// MeshConfig, once per policy rather than per request.
type deciderBox struct {
	d              Decider
	refuseOverride bool      // spec.refuseOverrideHeaders
	tel            telemetry // spec.telemetry under Config.Telemetry
}

// telemetry is a policy.Telemetry resolved: what this sidecar records
// about allowed traffic now.
type telemetry struct{ accessLog, metrics, tracing bool }

// resolveTelemetry is the sidecar's overrides over the MeshConfig's
// switches over the defaults.
func (cfg *Config) resolveTelemetry(mesh policy.Telemetry) telemetry {
	t := cfg.Telemetry.Over(mesh).Over(policy.DefaultTelemetry())
	return telemetry{accessLog: *t.AccessLog, metrics: *t.Metrics, tracing: *t.Tracing}
}

// Proxy is one running sidecar. Create it with New, start it with Run; the
// Set methods may be called at any time from any goroutine.
type Proxy struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	now  func() time.Time
	self spiffeid.ID
	dest policy.Destination

	policy    atomic.Pointer[deciderBox]
	noPolicy  telemetry // the switches while no policy is in force
	banned    atomic.Pointer[map[spiffeid.ID]struct{}]
	upstreams atomic.Pointer[map[string]*upstream]
	upMu      sync.Mutex // serializes writers of upstreams

	inbound *inbound       // nil without an inbound side
	out     []*outListener // one per upstream + the HTTP proxy port
	outConn *connTracker   // outbound connections, for the drain
	ran     atomic.Bool
}

// New validates cfg, applies defaults and binds every listener, so that
// address errors surface here and Addr methods work before Run.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	cfg.Limits.setDefaults()
	cfg.Timeouts.setDefaults()
	if cfg.Logger == nil {
		cfg.Logger = observe.Discard()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	self, _ := cfg.identity(cfg.Namespace, account(cfg.ServiceAccount, cfg.Service)) // validated
	p := &Proxy{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String(observe.KeyComponent, "proxy"), slog.String(observe.KeyService, cfg.Service)),
		m:       m,
		now:     cfg.Now,
		self:    self,
		outConn: newConnTracker(),
	}
	p.noPolicy = cfg.resolveTelemetry(policy.Telemetry{})
	p.dest = policy.Destination{Service: cfg.Service, Namespace: cfg.Namespace, Port: cfg.Port}
	if p.dest.Port == 0 && cfg.AppAddr != "" {
		_, port, _ := net.SplitHostPort(cfg.AppAddr)
		p.dest.Port, _ = strconv.Atoi(port)
	}
	empty := map[string]*upstream{}
	p.upstreams.Store(&empty)
	for _, u := range cfg.Upstreams {
		if _, err := p.ensureUpstream(u.Service, u.Namespace, u.ServiceAccount, u.Protocol); err != nil {
			return nil, err
		}
	}

	var lns []net.Listener
	fail := func(err error) (*Proxy, error) {
		for _, l := range lns {
			_ = l.Close()
		}
		return nil, err
	}
	if cfg.InboundAddr != "" {
		ln, err := net.Listen("tcp", cfg.InboundAddr)
		if err != nil {
			return fail(fmt.Errorf("inbound: %w", err))
		}
		lns = append(lns, ln)
		p.inbound = newInbound(p, ln)
	}
	for _, u := range cfg.Upstreams {
		ln, err := net.Listen("tcp", u.Listen)
		if err != nil {
			return fail(fmt.Errorf("upstream %s: %w", u.Service, err))
		}
		lns = append(lns, ln)
		up := (*p.upstreams.Load())[u.Service]
		p.out = append(p.out, p.newOutListener(ln, up))
	}
	if cfg.HTTPProxyAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPProxyAddr)
		if err != nil {
			return fail(fmt.Errorf("http proxy: %w", err))
		}
		lns = append(lns, ln)
		p.out = append(p.out, p.newOutListener(ln, nil))
	}
	return p, nil
}

// InboundAddr is the bound mTLS listener address, nil without one.
func (p *Proxy) InboundAddr() net.Addr {
	if p.inbound == nil {
		return nil
	}
	return p.inbound.ln.Addr()
}

// UpstreamAddr is the bound plaintext listener of an upstream ("" for the
// HTTP proxy port), nil when there is none.
func (p *Proxy) UpstreamAddr(service string) net.Addr {
	for _, o := range p.out {
		if (o.up == nil && service == "") || (o.up != nil && o.up.service == service) {
			return o.ln.Addr()
		}
	}
	return nil
}

// SetPolicy swaps the compiled policy; nil means deny everything again.
func (p *Proxy) SetPolicy(d Decider) {
	if d == nil {
		p.policy.Store(nil)
		return
	}
	b := &deciderBox{d: d, tel: p.noPolicy}
	if c, ok := d.(interface{ Config() policy.MeshConfig }); ok { // *policy.Engine
		mc := c.Config()
		b.refuseOverride = mc.RefuseOverrideHeaders
		b.tel = p.cfg.resolveTelemetry(mc.Telemetry)
	}
	p.policy.Store(b)
}

// SetBanned replaces the banned identities. They are refused before policy,
// at the handshake of new connections and on the next request of live ones.
func (p *Proxy) SetBanned(ids []spiffeid.ID) {
	m := make(map[spiffeid.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	p.banned.Store(&m)
	if p.inbound != nil {
		p.inbound.closeBannedTCP(m)
	}
}

func (p *Proxy) isBanned(id spiffeid.ID) bool {
	m := p.banned.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[id]
	return ok
}

// refusesOverrides reports whether the policy in force refuses requests
// carrying method or URL override headers.
func (p *Proxy) refusesOverrides() bool {
	b := p.policy.Load()
	return b != nil && b.refuseOverride
}

// decide asks the current policy; no policy denies.
func (p *Proxy) decide(req *policy.Request) policy.Decision {
	if b := p.policy.Load(); b != nil {
		return b.d.Decide(req)
	}
	return policy.Decision{Allow: false, Rule: "no-policy", Mode: "enforce"}
}

// SetEndpoints replaces the sidecar addresses (host:port) of service. The
// whole update is rejected if an address is malformed. Services that are
// not configured upstreams become reachable through the HTTP proxy port.
func (p *Proxy) SetEndpoints(service string, addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("endpoints of %s: %q: %w", service, a, err)
		}
	}
	u, err := p.ensureUpstream(service, "", "", "")
	if err != nil {
		return err
	}
	u.setEndpoints(addrs)
	return nil
}

// Run serves until ctx is cancelled, then drains: it stops accepting,
// lets in-flight requests and connections finish within Timeouts.Drain and
// closes what is left. Call it once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("proxy: Run called twice")
	}
	p.log.Info("sidecar starting", slog.Any("inbound", p.InboundAddr()), slog.Int("upstreams", len(p.cfg.Upstreams)))
	g, gctx := errgroup.WithContext(ctx)
	if p.inbound != nil {
		g.Go(func() error { return p.inbound.run(gctx) })
	}
	for _, o := range p.out {
		g.Go(func() error { return o.run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		return nil
	})
	<-gctx.Done()
	p.log.Info("sidecar draining", slog.Duration("timeout", p.cfg.Timeouts.Drain))
	dctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeouts.Drain)
	defer cancel()
	var dg sync.WaitGroup
	if p.inbound != nil {
		dg.Go(func() { p.inbound.drain(dctx) })
	}
	for _, o := range p.out {
		dg.Go(func() { o.drain(dctx) })
	}
	dg.Go(func() { waitEmpty(dctx, p.outConn) })
	dg.Wait()
	p.outConn.closeAll()
	for _, u := range *p.upstreams.Load() {
		u.closeIdle()
	}
	err := g.Wait()
	p.log.Info("sidecar stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitEmpty waits until t has no open connections or ctx ends.
func waitEmpty(ctx context.Context, t *connTracker) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for t.len() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handshakeFailed records a refused or failed handshake.
func (p *Proxy) handshakeFailed(side string, remote net.Addr, err error) {
	reason := mtls.FailureReason(err)
	p.m.handshakeFailures.WithLabelValues(side, reason).Inc()
	p.log.Debug("tls handshake failed", slog.String("side", side), slog.String(observe.KeyAddr, remote.String()),
		slog.String(observe.KeyReason, reason), slog.Any(observe.KeyError, err))
}

// tlsConfigServer builds the inbound config: ALPN follows the app protocol so
// a TCP stream can never bypass L7 policy and vice versa.
func (p *Proxy) tlsConfigServer() *tls.Config {
	protos := []string{mtls.ALPNHTTP2, mtls.ALPNHTTP1}
	if p.cfg.AppProtocol == ProtocolTCP {
		protos = []string{mtls.ALPNTCP}
	}
	return mtls.ServerConfig(p.cfg.SVID, p.cfg.Bundle, mtls.AuthorizeMemberOf(p.cfg.TrustDomain),
		mtls.Options{NextProtos: protos, Now: p.cfg.Now})
}

// telemetry is what the policy in force says to record.
func (p *Proxy) telemetry() telemetry {
	if b := p.policy.Load(); b != nil {
		return b.tel
	}
	return p.noPolicy
}

// accessOn reports whether a request or connection gets its access-log
// line (Info): always when it was not simply allowed (denied, or allowed
// in audit mode only), otherwise when the access log is on. Callers build
// the line's attributes only then.
func (p *Proxy) accessOn(ctx context.Context, t telemetry, decision string) bool {
	return (t.accessLog || (decision != "allow" && decision != "")) && p.log.Enabled(ctx, slog.LevelInfo)
}

// limitHit counts a rejection by an abuse limit.
func (p *Proxy) limitHit(limit string) {
	p.m.limitRejections.WithLabelValues(limit).Inc()
	p.log.Debug("limit reached", slog.String("limit", limit))
}

var errNoEndpoints = errors.New("no endpoints")

// httpError writes a short plain-text error.
func httpError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n")) //nolint:gosec // G705: text/plain with nosniff above, never rendered as HTML
}

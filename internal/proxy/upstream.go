package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"meshward.dev/meshward/internal/mtls"
)

// upstream is a service this sidecar calls: its expected identity, its
// endpoints and the pooled mTLS transports that reach them.
type upstream struct {
	p       *Proxy
	service string
	id      spiffeid.ID
	proto   Protocol
	eps     atomic.Pointer[endpointSet]

	h2 *http2.Transport // multiplexed HTTP
	h1 *http.Transport  // one connection per Upgrade request
	// pool carries HTTP/1.1 requests of HTTP/1.1 apps over http/1.1
	// keep-alive mTLS connections (no HTTP/2 framing, no goroutine
	// hand-offs); HTTP/2 takes over when it is full.
	pool *h1Pool
	tcp  *tls.Config // one connection per TCP stream
}

// ensureUpstream returns the upstream for service, creating it (with the
// given namespace, identity account and protocol, or the defaults) on
// first use.
func (p *Proxy) ensureUpstream(service, ns, sa string, proto Protocol) (*upstream, error) {
	if u := (*p.upstreams.Load())[service]; u != nil {
		return u, nil
	}
	p.upMu.Lock()
	defer p.upMu.Unlock()
	cur := *p.upstreams.Load()
	if u := cur[service]; u != nil {
		return u, nil
	}
	if ns == "" {
		ns = p.cfg.Namespace
	}
	if proto == "" {
		proto = ProtocolHTTP
	}
	id, err := p.cfg.identity(ns, account(sa, service))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", service, err)
	}
	u := &upstream{p: p, service: service, id: id, proto: proto}
	u.eps.Store(&endpointSet{})
	authz := p.refuseBannedServer(mtls.AuthorizeID(id))
	clientCfg := func(alpn string) *tls.Config {
		return mtls.ClientConfig(p.cfg.SVID, p.cfg.Bundle, authz, mtls.Options{NextProtos: []string{alpn}, Now: p.cfg.Now})
	}
	h2cfg, h1cfg := clientCfg(mtls.ALPNHTTP2), clientCfg(mtls.ALPNHTTP1)
	u.tcp = clientCfg(mtls.ALPNTCP)
	u.h2 = &http2.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return u.dialTLS(ctx, network, poolAddr(addr), h2cfg)
		},
		ReadIdleTimeout:    30 * time.Second,
		PingTimeout:        10 * time.Second,
		IdleConnTimeout:    p.cfg.Timeouts.Idle,
		DisableCompression: true,
		MaxHeaderListSize:  uint32(min(int64(p.cfg.Limits.MaxHeaderBytes), math.MaxUint32)), //nolint:gosec // bounded: Validate rejects negatives, min clamps the top
	}
	u.h1 = &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return u.dialTLS(ctx, network, addr, h1cfg)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	u.pool = newH1Pool(func(ctx context.Context, addr string) (net.Conn, error) {
		return u.dialTLS(ctx, "tcp", addr, h1cfg)
	}, p.now, p.cfg.Timeouts.Idle/2, maxPoolConns, maxPoolConns)
	next := make(map[string]*upstream, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[service] = u
	p.upstreams.Store(&next)
	return u, nil
}

// dialTLS opens one mTLS connection to an upstream sidecar and checks the
// negotiated protocol.
func (u *upstream) dialTLS(ctx context.Context, network, addr string, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.p.cfg.Timeouts.Connect)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		u.p.handshakeFailed("outbound", raw.RemoteAddr(), err)
		return nil, fmt.Errorf("mtls to %s at %s: %w", u.id, addr, err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != cfg.NextProtos[0] {
		_ = tc.Close()
		return nil, fmt.Errorf("mtls to %s at %s: negotiated %q, want %q", u.id, addr, got, cfg.NextProtos[0])
	}
	return tc, nil
}

// setEndpoints swaps in a new endpoint set, keeping the state of addresses
// that stay.
func (u *upstream) setEndpoints(addrs []string) {
	old := map[string]*endpoint{}
	for _, e := range u.eps.Load().eps {
		old[e.addr] = e
	}
	set := &endpointSet{}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		if e := old[a]; e != nil {
			set.eps = append(set.eps, e)
			continue
		}
		set.eps = append(set.eps, newEndpoint(a))
	}
	u.eps.Store(set)
}

func (u *upstream) closeIdle() {
	u.h2.CloseIdleConnections()
	u.h1.CloseIdleConnections()
	u.pool.closeIdle(true)
}

// maxPoolConns bounds the pooled http/1.1 connections per endpoint (the
// inbound side allows Limits.MaxConnsPerPeer per caller).
const maxPoolConns = 64

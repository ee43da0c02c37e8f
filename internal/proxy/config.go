package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.opentelemetry.io/otel/trace"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/policy"
)

// Protocol is what the application speaks on a port.
type Protocol string

// Protocols an application or upstream may speak.
const (
	ProtocolHTTP  Protocol = "http"  // HTTP/1.1 (the outbound listener also accepts h2c)
	ProtocolHTTP2 Protocol = "http2" // HTTP/2 without TLS (h2c prior knowledge)
	ProtocolGRPC  Protocol = "grpc"  // gRPC, i.e. h2c
	ProtocolTCP   Protocol = "tcp"   // raw byte stream, policy per connection
)

func (p Protocol) valid() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP:
		return true
	}
	return false
}

// Config configures one sidecar. Service, Namespace, TrustDomain, SVID and
// Bundle are required; so is InboundAddr+AppAddr, or at least one upstream.
type Config struct {
	// Service and Namespace name this sidecar's service (policies name it
	// as the destination); with TrustDomain and ServiceAccount they give
	// its identity, spiffe://<td>/ns/<namespace>/sa/<serviceAccount>
	// (identity.ServiceID).
	Service   string
	Namespace string
	// ServiceAccount is the account of the service's identity; empty
	// means Service.
	ServiceAccount string
	TrustDomain    spiffeid.TrustDomain

	// SVID and Bundle are read on every handshake (rotation in place).
	SVID   x509svid.Source
	Bundle x509bundle.Source

	// InboundAddr is the mTLS listen address ("" for no inbound side).
	InboundAddr string
	// AppAddr is the application's plaintext loopback address, AppProtocol
	// what it speaks, Port the service port policies name (default: the
	// port of AppAddr).
	AppAddr     string
	AppProtocol Protocol
	Port        int

	// Upstreams get one plaintext loopback listener each.
	Upstreams []Upstream
	// HTTPProxyAddr, if set, is a plaintext HTTP proxy port where the app
	// addresses services by name (http://catalog/...).
	HTTPProxyAddr string

	// AllowUpgrades are the HTTP/1.1 Upgrade protocols (RFC 9110 7.8)
	// the inbound side forwards to the app besides websocket, such as
	// "tcp", once the upgrade request passed policy: an upgraded
	// connection is one byte stream that policy decided once. Any other
	// protocol is refused (403); h2c cannot be listed.
	AllowUpgrades []string

	Limits   Limits
	Timeouts Timeouts

	// Observer, if set, is told about every request and connection after
	// it is handled (tap, deny reports). It runs on the request's
	// goroutine and must not block.
	Observer func(*Event)
	// Tracer, if set, records a span per HTTP/gRPC request (server spans
	// inbound, client spans outbound) and propagates W3C traceparent to
	// the app and the upstream. nil: no tracing, no cost.
	Tracer trace.Tracer
	// Telemetry overrides, for this sidecar, the MeshConfig's
	// spec.telemetry (access log, per-request metrics, tracing); nil
	// fields follow the policy in force. Denies are logged and counted
	// whatever it says.
	Telemetry policy.Telemetry

	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: a private registry
	Now        func() time.Time      // nil: time.Now
}

// Upstream is a service this one calls.
type Upstream struct {
	Service        string
	Namespace      string   // default: Config.Namespace
	ServiceAccount string   // the account of its identity; default: Service
	Listen         string   // plaintext loopback address for the app, e.g. 127.0.0.1:9001
	Protocol       Protocol // default: http
}

// Limits against abuse; zero fields take the defaults in defaults.go.
type Limits struct {
	MaxHeaderBytes         int // request header bytes (HTTP/1.1 and HTTP/2)
	MaxConcurrentStreams   int // HTTP/2 streams per connection
	MaxConnsPerPeer        int // inbound connections per peer identity
	MaxResetsPerConnMinute int // client-cancelled HTTP/2 streams per connection and minute (rapid reset)
	MaxHeaderBytesPerPeer  int // header bytes of one peer identity's inbound requests in flight (beyond: 429)
}

// Timeouts are the proxy's time limits; zero fields take the defaults in
// defaults.go.
type Timeouts struct {
	Connect        time.Duration // dial of an upstream sidecar or the app
	Handshake      time.Duration // inbound TLS handshake
	ReadHeader     time.Duration // request headers (slowloris)
	ResponseHeader time.Duration // upstream response headers (not for gRPC, Upgrade, TCP)
	Idle           time.Duration // idle keep-alive connections
	Drain          time.Duration // in-flight work after Run's ctx is cancelled
	Eject          time.Duration // how long a failed endpoint is skipped
}

// Validate reports every problem in c, naming the field.
func (c *Config) Validate() error { return c.validate(true) }

// ValidateBeforeIdentity checks everything that does not need the
// sidecar's identity (addresses, protocols, upstreams, limits). A sidecar
// runs it before it redeems its single-use join token, so a typo in a flag
// does not spend the token.
func (c *Config) ValidateBeforeIdentity() error { return c.validate(false) }

// CheckListenersFree tries each address the proxy will listen on, so a
// port another process holds is found before the sidecar redeems its
// single-use join token (New binds them for real afterwards).
func (c *Config) CheckListenersFree() error {
	var errs []error
	try := func(field, addr string) {
		if addr == "" {
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				err = errors.New("already in use by another process (see ss -ltnp); stop it or choose another address")
			}
			errs = append(errs, fmt.Errorf("%s %s: %w", field, addr, err))
			return
		}
		_ = ln.Close()
	}
	try("inbound", c.InboundAddr)
	for i, u := range c.Upstreams {
		try(fmt.Sprintf("upstreams[%d].listen", i), u.Listen)
	}
	try("httpProxy", c.HTTPProxyAddr)
	return errors.Join(errs...)
}

func (c *Config) validate(withIdentity bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Service == "" {
		bad("service", "required")
	}
	if c.Namespace == "" {
		bad("namespace", "required")
	}
	if withIdentity {
		if c.TrustDomain.IsZero() {
			bad("trustDomain", "required")
		}
		if c.SVID == nil {
			bad("svid", "a source is required")
		}
		if c.Bundle == nil {
			bad("bundle", "a source is required")
		}
	}
	if c.Service != "" && c.Namespace != "" && !c.TrustDomain.IsZero() {
		if _, err := c.identity(c.Namespace, account(c.ServiceAccount, c.Service)); err != nil {
			bad("service", "%v", err)
		}
	}
	if c.InboundAddr == "" && len(c.Upstreams) == 0 && c.HTTPProxyAddr == "" {
		bad("inbound", "no inbound address and no upstreams: nothing to do")
	}
	if c.InboundAddr != "" {
		if c.AppAddr == "" {
			bad("app", "an inbound listener needs the app address")
		} else if err := loopbackAddr(c.AppAddr); err != nil {
			bad("app", "%v", err)
		}
		if !c.AppProtocol.valid() {
			bad("protocol", "%q is not one of http, http2, grpc, tcp", c.AppProtocol)
		}
		if c.Port < 0 || c.Port > 65535 {
			bad("port", "%d out of range", c.Port)
		}
	}
	seen := map[string]bool{}
	for i, u := range c.Upstreams {
		f := fmt.Sprintf("upstreams[%d]", i)
		if u.Service == "" {
			bad(f+".service", "required")
		}
		if seen[u.Service] {
			bad(f+".service", "%q listed twice", u.Service)
		}
		seen[u.Service] = true
		if u.Listen == "" {
			bad(f+".listen", "required")
		} else if err := loopbackAddr(u.Listen); err != nil {
			bad(f+".listen", "%v", err)
		}
		if u.Protocol != "" && !u.Protocol.valid() {
			bad(f+".protocol", "%q is not one of http, http2, grpc, tcp", u.Protocol)
		}
		ns := u.Namespace
		if ns == "" {
			ns = c.Namespace
		}
		if u.Service != "" && ns != "" && !c.TrustDomain.IsZero() {
			if _, err := c.identity(ns, account(u.ServiceAccount, u.Service)); err != nil {
				bad(f+".service", "%v", err)
			}
		}
	}
	for i, u := range c.AllowUpgrades {
		if err := config.ValidUpgrade(u); err != nil {
			bad(fmt.Sprintf("allowUpgrades[%d]", i), "%v", err)
		}
	}
	if c.HTTPProxyAddr != "" {
		if err := loopbackAddr(c.HTTPProxyAddr); err != nil {
			bad("httpProxy", "%v", err)
		}
	}
	for _, v := range []struct {
		name string
		n    int
	}{
		{"limits.maxHeaderBytes", c.Limits.MaxHeaderBytes},
		{"limits.maxConcurrentStreams", c.Limits.MaxConcurrentStreams},
		{"limits.maxConnsPerPeer", c.Limits.MaxConnsPerPeer},
		{"limits.maxResetsPerConnMinute", c.Limits.MaxResetsPerConnMinute},
		{"limits.maxHeaderBytesPerPeer", c.Limits.MaxHeaderBytesPerPeer},
	} {
		if v.n < 0 {
			bad(v.name, "must not be negative")
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"timeouts.connect", c.Timeouts.Connect}, {"timeouts.handshake", c.Timeouts.Handshake},
		{"timeouts.readHeader", c.Timeouts.ReadHeader}, {"timeouts.responseHeader", c.Timeouts.ResponseHeader},
		{"timeouts.idle", c.Timeouts.Idle}, {"timeouts.drain", c.Timeouts.Drain}, {"timeouts.eject", c.Timeouts.Eject},
	} {
		if v.d < 0 {
			bad(v.name, "must not be negative")
		}
	}
	return errors.Join(errs...)
}

// identity is the identity of account in namespace ns.
func (c *Config) identity(ns, account string) (spiffeid.ID, error) {
	return identity.ServiceID(c.TrustDomain, ns, account)
}

// account is the account of a service's identity: sa, or the service's
// name when sa is empty.
func account(sa, service string) string {
	if sa != "" {
		return sa
	}
	return service
}

// CheckLoopback is loopbackAddr for the sidecar's and the control plane's
// unauthenticated endpoints (admin, dashboard).
func CheckLoopback(addr string) error { return loopbackAddr(addr) }

// loopbackAddr accepts host:port where host is a loopback IP or localhost:
// plaintext listeners and the app must never be reachable off the machine.
func loopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store"
)

// PolicyCheck compiles a policy set the way sidecars will, and returns its
// version (content hash); an error rejects the whole set. known, when not
// nil, is every service ("namespace/name") the control plane has issued an
// identity to or has connected: a target or source outside it is an error
// (a typo that would break traffic). A check that knows the mesh's own
// list of services (under `meshward up`) uses that list instead.
type PolicyCheck func(files []policy.File, known []string) (version string, err error)

// Config configures the control plane.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	Listen      string // host:port
	DataDir     string // admin credentials are written to DataDir/admin
	Store       store.Store
	CA          *ca.Authority
	CheckPolicy PolicyCheck
	Now         func() time.Time
	Logger      *slog.Logger
	// TickInterval is how often CA schedules and rotation phases are
	// checked (default 5s).
	TickInterval time.Duration
	// AdminTTL is the lifetime of the admin credential (default 24h).
	AdminTTL time.Duration
	// Registerer receives the control plane's metrics (nil: a private
	// registry).
	Registerer prometheus.Registerer
	// AuditRetention is how long audit events are kept (default 7 days).
	AuditRetention time.Duration
	// EndpointsWarmup is how long after start the endpoint registry is
	// treated as incomplete (default 20s, longer than a sidecar's
	// reconnect backoff).
	EndpointsWarmup time.Duration
	// MaxWatchesPerIdentity caps the watch streams one identity may hold
	// open at once (default 32, about 1 MB: replicas of a service share
	// its identity, so a service with more replicas needs more). A stream
	// beyond it is refused with ResourceExhausted; the open ones, which
	// belong to working sidecars, are never cut for it.
	MaxWatchesPerIdentity int
	// Attestors are attestors besides join tokens (which are always on),
	// chosen by the type of the evidence a Bootstrap request carries.
	Attestors []attest.Attestor
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.TrustDomain.IsZero():
		return errors.New("control: trust domain is required")
	case c.Listen == "":
		return errors.New("control: listen address is required")
	case c.DataDir == "":
		return errors.New("control: data dir is required")
	case c.Store == nil || c.CA == nil:
		return errors.New("control: store and CA are required")
	case c.CheckPolicy == nil:
		return errors.New("control: policy checker is required")
	}
	seen := map[string]bool{attest.JoinTokenName: true}
	for _, a := range c.Attestors {
		if a == nil || a.Name() == "" || seen[a.Name()] {
			return errors.New("control: each attestor needs a name of its own (join_token is built in)")
		}
		seen[a.Name()] = true
	}
	return nil
}

// Server is the control plane.
type Server struct {
	apiv1.UnimplementedControlServer

	cfg    Config
	log    *slog.Logger
	tokens *attest.Tokens
	hub    *hub
	ln     net.Listener

	// attestors by evidence type; join_token redeems tokens.
	attestors map[string]attest.Attestor

	cert    atomic.Pointer[tls.Certificate] // the control plane's own SVID
	certFP  atomic.Value                    // signing root it chains to (string)
	started time.Time

	m        *metrics
	refusals rateWindow   // bounds audit writes for refused bootstraps
	reports  reportBounds // bounds what workload reports write (reports.go)
	observed obsBounds    // bounds what learn-mode observations write (observations.go)
	chains   chainLog     // workload chains issued or seen, for MeshCheck (check.go)
	pruned   time.Time    // last audit pruning
	mu       sync.Mutex   // guards policy and bans writes
	advanceC chan struct{}
}

// New builds the control plane and opens its listener, so the address is
// known (and the port taken) before Run.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = observe.Discard()
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 5 * time.Second
	}
	if cfg.AdminTTL == 0 {
		cfg.AdminTTL = 24 * time.Hour
	}
	if cfg.AuditRetention == 0 {
		cfg.AuditRetention = 7 * 24 * time.Hour
	}
	if cfg.MaxWatchesPerIdentity <= 0 {
		cfg.MaxWatchesPerIdentity = 32
	}
	if cfg.EndpointsWarmup == 0 {
		cfg.EndpointsWarmup = 20 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		tokens:   &attest.Tokens{Store: cfg.Store, Now: cfg.Now},
		advanceC: make(chan struct{}, 1),
		started:  cfg.Now(),
	}
	s.attestors = map[string]attest.Attestor{attest.JoinTokenName: attest.JoinToken{Tokens: s.tokens}}
	for _, a := range cfg.Attestors {
		s.attestors[a.Name()] = a
	}
	s.hub = newHub()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s.m = newMetrics(cfg.Registerer, s)
	if err := s.loadMeshState(ctx); err != nil {
		return nil, err
	}
	if err := s.refreshCredentials(ctx, true); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("control: listen: %w", err)
	}
	s.ln = ln
	if err := writeAtomic(filepath.Join(cfg.DataDir, AddrFile), []byte(ln.Addr().String()+"\n")); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return s, nil
}

// Addr is the address the control plane listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	creds := credentials.NewTLS(s.tlsConfig())
	gs := grpc.NewServer(
		grpc.Creds(creds),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(8<<20),
	)
	apiv1.RegisterControlServer(gs, s)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(s.ln) }()
	s.log.Info("control plane listening", observe.KeyAddr, s.ln.Addr().String(), observe.KeySPIFFEID, identity.ControlID(s.cfg.TrustDomain).String())

	tick := time.NewTicker(s.cfg.TickInterval)
	defer tick.Stop()
	warm := false
	for {
		select {
		case <-ctx.Done():
			s.hub.close()
			stopped := make(chan struct{})
			go func() { gs.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				gs.Stop()
			}
			return nil
		case err := <-errc:
			return fmt.Errorf("control: serve: %w", err)
		case <-tick.C:
			s.tick(ctx)
			if !warm && s.endpointsComplete() {
				// Tell every stream the registry is now authoritative.
				warm = true
				s.hub.update(func(*meshState) {})
			}
		case <-s.advanceC:
			s.advance(ctx)
		}
	}
}

// tick runs CA schedules and keeps the control plane's own credentials
// fresh.
func (s *Server) tick(ctx context.Context) {
	changed, err := s.cfg.CA.Tick(ctx)
	if err != nil {
		s.log.Error("ca schedule failed", observe.KeyError, err)
	}
	if changed {
		s.audit(ctx, "ca.rotate", "scheduler", "intermediate", "scheduled rotation", "ok")
		s.hub.update(func(m *meshState) { m.bundle = s.cfg.CA.Bundle() })
	}
	s.advance(ctx)
	if err := s.refreshCredentials(ctx, false); err != nil {
		s.log.Error("refresh control plane credentials failed", observe.KeyError, err)
	}
	s.flushDrops(ctx, s.cfg.Now())
	if now := s.cfg.Now(); now.Sub(s.pruned) > time.Hour {
		s.pruned = now
		n, err := s.cfg.Store.PruneAudit(ctx, now.Add(-s.cfg.AuditRetention))
		if err != nil {
			s.log.Error("audit pruning failed", observe.KeyError, err)
		} else if n > 0 {
			s.log.Info("pruned old audit events", "count", n, "retention", s.cfg.AuditRetention)
		}
	}
}

// advance moves root rotation on when workloads' reports prove it safe.
func (s *Server) advance(ctx context.Context) {
	before := s.cfg.CA.Phase()
	moved, err := s.cfg.CA.Advance(ctx, s.hub.holdings())
	if err != nil {
		s.log.Error("root rotation failed to advance", observe.KeyError, err)
		return
	}
	if !moved {
		return
	}
	after := s.cfg.CA.Phase()
	s.audit(ctx, "ca.rotate", "scheduler", "root", fmt.Sprintf("phase %s -> %s", before, after), "ok")
	// Every stream recomputes its view: bundle changes, and in the
	// activate phase old-root workloads are told to renew now.
	s.hub.update(func(m *meshState) { m.bundle = s.cfg.CA.Bundle() })
	if err := s.refreshCredentials(ctx, false); err != nil {
		s.log.Error("refresh control plane credentials failed", observe.KeyError, err)
	}
}

func (s *Server) kickAdvance() {
	select {
	case s.advanceC <- struct{}{}:
	default:
	}
}

// tlsConfig accepts clients with or without a certificate: Bootstrap is
// the one call a workload makes before it has one. Any certificate that is
// presented must be a valid SVID of this trust domain, checked against the
// current bundle on every handshake.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
		// VerifyConnection, unlike VerifyPeerCertificate, also runs on
		// resumed sessions: a resumed client is checked against the
		// current bundle and clock too.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			now := s.cfg.Now()
			if _, _, err := x509svid.Verify(cs.PeerCertificates, s.bundleSource(), x509svid.WithTime(now)); err != nil {
				return err
			}
			s.chains.remember(cs.PeerCertificates, now)
			return nil
		},
		NextProtos: []string{"h2"},
	}
}

func (s *Server) bundleSource() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(s.cfg.TrustDomain, s.cfg.CA.Bundle())
}

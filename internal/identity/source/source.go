// Package source is the workload side of identity: it bootstraps with
// attestation evidence (a join token, or evidence for another attestor),
// authenticating the control plane by the token's CA pin or by a bundle it
// was given, keeps the private key in memory, renews the SVID at half-life
// with jitter (retrying with backoff while the control plane is down, and
// serving the current SVID until it expires), and follows the control
// plane's watch stream for bundle, policy, endpoint and ban updates. The
// current SVID and bundle sit behind atomic pointers: it implements
// go-spiffe's x509svid.Source and x509bundle.Source, read on every TLS
// handshake, so rotation never restarts a listener.
package source

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// Config configures a Source.
type Config struct {
	ControlAddr string // host:port of the control plane
	// Token is a join token (mwt1....): the evidence for the control
	// plane's join_token attestor, and the pin of the CA root the control
	// plane must chain to.
	Token string
	// Evidence is evidence for another attestor, when Token is empty. It
	// carries no pin, so it needs Bundle.
	Evidence *Evidence
	// Bundle is PEM root certificates given to the workload: before it has
	// a bundle of its own, the control plane's chain must verify under one
	// of them. With a Token, the pin must match as well.
	Bundle []byte
	// TrustDomain, when set, must match the control plane's.
	TrustDomain spiffeid.TrustDomain
	// Report adds the caller's fields (inbound address, policy version,
	// counters) to the periodic watch report; the source fills in what it
	// holds (bundle, SVID).
	Report func() *apiv1.WorkloadReport
	// Unsent, if set, is handed back a report whose Send failed (the
	// stream broke under it), so the caller can queue its denies again
	// for the next report instead of losing them.
	Unsent func(*apiv1.WorkloadReport)
	// OnUpdate receives every mesh update from the watch stream.
	OnUpdate func(*apiv1.MeshUpdate)
	// ReportInterval is how often the workload reports (default 5s).
	ReportInterval time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Evidence is attestation evidence of one type, for the control plane's
// attestor of that name (see internal/attest).
type Evidence struct {
	Type    string
	Payload []byte // never logged
}

// Source holds a workload's current SVID and trust bundle.
type Source struct {
	cfg Config
	log *slog.Logger

	svid atomic.Pointer[x509svid.SVID]
	// svidRoot is the fingerprint of the root the current SVID verified
	// under when it was installed (reported for root rotation).
	svidRoot atomic.Value
	bundle   atomic.Pointer[x509bundle.Bundle]
	td       spiffeid.TrustDomain

	mu      sync.Mutex
	changed chan struct{} // closed on every SVID or bundle change

	// escaped counts report strings that were not valid UTF-8 and went
	// out escaped (observe.Printable), dropped the items a report could
	// still not marshal with.
	escaped, unmarshalable atomic.Int64
	// sessions counts the Watch streams opened: 1 for as long as the
	// first stream lasts, so a stream something ended shows as a rise.
	sessions atomic.Int64

	conn     *grpc.ClientConn
	renewNow chan struct{}
	reportC  chan struct{}
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// ErrNoSVID is returned before the first SVID arrives.
var ErrNoSVID = errors.New("no SVID yet")

// New bootstraps: it trades the evidence (Token or Evidence) for an SVID,
// authenticating the control plane by the token's CA pin, by Bundle, or by
// both when both are given.
func New(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.ControlAddr == "" {
		return nil, errors.New("source: control plane address is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = observe.Discard()
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = 5 * time.Second
	}
	req, trust, err := firstContact(cfg)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}), renewNow: make(chan struct{}, 1), reportC: make(chan struct{}, 1)}
	if err := s.bootstrap(ctx, req, trust); err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(tlsconfig.MTLSClientConfig(s, s, tlsconfig.AuthorizeID(identity.ControlID(s.td))))
	conn, err := grpc.NewClient(cfg.ControlAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("source: dial control plane: %w", err)
	}
	s.conn = conn
	return s, nil
}

// install swaps in a new SVID and bundle from a response.
func (s *Source) install(resp *apiv1.SVIDResponse, key *ecdsa.PrivateKey) error {
	certs, err := parseDER(resp.GetChain())
	if err != nil {
		return err
	}
	svid := &x509svid.SVID{Certificates: certs, PrivateKey: key}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return err
	}
	svid.ID = id
	if !id.MemberOf(s.td) {
		return fmt.Errorf("issued %s, outside trust domain %s", id, s.td)
	}
	if err := s.setBundle(resp.GetBundle()); err != nil {
		return err
	}
	// Check what we were given before using it; the verified chain ends
	// in the root this SVID belongs to.
	_, chains, err := x509svid.Verify(certs, s.bundle.Load(), x509svid.WithTime(s.cfg.Now()))
	if err != nil {
		return fmt.Errorf("issued SVID does not verify: %w", err)
	}
	chain := chains[0]
	s.svidRoot.Store(identity.Fingerprint(chain[len(chain)-1]))
	s.svid.Store(svid)
	s.notify()
	s.kickReport()
	return nil
}

func (s *Source) setBundle(der [][]byte) error {
	if len(der) == 0 {
		return nil
	}
	roots, err := parseDER(der)
	if err != nil {
		return err
	}
	next := x509bundle.FromX509Authorities(s.td, roots)
	if cur := s.bundle.Load(); cur != nil && cur.Equal(next) {
		return nil
	}
	s.bundle.Store(next)
	s.notify()
	s.kickReport()
	return nil
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	if v := s.svid.Load(); v != nil {
		return v, nil
	}
	return nil, ErrNoSVID
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b := s.bundle.Load()
	if b == nil || td != s.td {
		return nil, fmt.Errorf("no bundle for trust domain %q", td)
	}
	return b, nil
}

// TrustDomain is the workload's trust domain.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// Changed returns a channel closed at the next SVID or bundle change.
func (s *Source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Source) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Source) kickReport() {
	select {
	case s.reportC <- struct{}{}:
	default:
	}
}

// ReportNow sends a report to the control plane soon (for example, new
// denies to audit) instead of at the next interval.
func (s *Source) ReportNow() { s.kickReport() }

// RenewNow asks the renewal loop to renew at once.
func (s *Source) RenewNow() {
	select {
	case s.renewNow <- struct{}{}:
	default:
	}
}

// Close releases the connection to the control plane.
func (s *Source) Close() error { return s.conn.Close() }

func parseDER(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, errors.New("empty certificate list")
	}
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// jitter returns a random duration in [0, upTo).
func jitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(upTo)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

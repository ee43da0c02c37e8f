package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/svid"
	"meshward.dev/meshward/internal/observe"
)

// Config configures a Session.
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
	// counters) to the periodic watch report; the session fills in what
	// the holder holds (bundle, SVID).
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

// Session is a workload's bootstrapped session with the control plane.
type Session struct {
	cfg Config
	log *slog.Logger
	ids *svid.Holder // what the session installs into; set by bootstrap

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

// New bootstraps: it trades the evidence (Token or Evidence) for an SVID,
// authenticating the control plane by the token's CA pin, by Bundle, or by
// both when both are given, and installs it in a new svid.Holder (see
// Holder). Its errors keep the "source:" prefix they had before the
// session and the holder were one package, so what the CLI prints is
// unchanged.
func New(ctx context.Context, cfg Config) (*Session, error) {
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
	s := &Session{cfg: cfg, log: cfg.Logger, renewNow: make(chan struct{}, 1), reportC: make(chan struct{}, 1)}
	if err := s.bootstrap(ctx, req, trust); err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(tlsconfig.MTLSClientConfig(s.ids, s.ids, tlsconfig.AuthorizeID(identity.ControlID(s.ids.TrustDomain()))))
	conn, err := grpc.NewClient(cfg.ControlAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("source: dial control plane: %w", err)
	}
	s.conn = conn
	return s, nil
}

// Holder is the workload's current SVID and bundle, which the session
// keeps up to date: what TLS, the Workload API and readiness read.
func (s *Session) Holder() *svid.Holder { return s.ids }

// install puts a response's SVID (and bundle, when it carries one) into
// the holder, which verifies it first.
func (s *Session) install(resp *apiv1.SVIDResponse, key *ecdsa.PrivateKey) error {
	chain, err := parseDER(resp.GetChain())
	if err != nil {
		return err
	}
	var roots []*x509.Certificate
	if len(resp.GetBundle()) > 0 {
		if roots, err = parseDER(resp.GetBundle()); err != nil {
			return err
		}
	}
	if err := s.ids.Install(chain, key, roots); err != nil {
		return err
	}
	s.kickReport()
	return nil
}

// setBundle puts a pushed bundle into the holder.
func (s *Session) setBundle(der [][]byte) error {
	if len(der) == 0 {
		return nil
	}
	roots, err := parseDER(der)
	if err != nil {
		return err
	}
	return s.ids.SetBundle(roots)
}

func (s *Session) kickReport() {
	select {
	case s.reportC <- struct{}{}:
	default:
	}
}

// ReportNow sends a report to the control plane soon (for example, new
// denies to audit) instead of at the next interval.
func (s *Session) ReportNow() { s.kickReport() }

// RenewNow asks the renewal loop to renew at once.
func (s *Session) RenewNow() {
	select {
	case s.renewNow <- struct{}{}:
	default:
	}
}

// Close releases the connection to the control plane.
func (s *Session) Close() error { return s.conn.Close() }

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

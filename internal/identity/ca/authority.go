package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/store"
)

// Store is the part of the control plane store the CA needs.
type Store interface {
	LoadCA(ctx context.Context) ([]byte, int64, error)
	SaveCA(ctx context.Context, blob []byte, prev int64) (int64, error)
	RecordCert(ctx context.Context, c store.IssuedCert) error
	LatestExpiry(ctx context.Context, rootFP string) (time.Time, error)
}

// Config configures an Authority.
type Config struct {
	TrustDomain     spiffeid.TrustDomain
	Store           Store
	WorkloadTTL     time.Duration
	IntermediateTTL time.Duration
	RootTTL         time.Duration
	Now             func() time.Time
	Rand            io.Reader // nil: crypto/rand
	Logger          *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.TrustDomain.IsZero() {
		return errors.New("ca: trust domain is required")
	}
	if c.Store == nil {
		return errors.New("ca: store is required")
	}
	if c.WorkloadTTL < 0 || c.IntermediateTTL < 0 || c.RootTTL < 0 {
		return errors.New("ca: TTLs must be positive")
	}
	if c.WorkloadTTL > maxWorkloadTTL {
		return fmt.Errorf("ca: workload TTL %s is above the %s maximum", c.WorkloadTTL, maxWorkloadTTL)
	}
	if c.IntermediateTTL > 0 && c.WorkloadTTL > c.IntermediateTTL/2 {
		return errors.New("ca: workload TTL must be at most half the intermediate TTL")
	}
	if c.RootTTL > 0 && c.IntermediateTTL > c.RootTTL/2 {
		return errors.New("ca: intermediate TTL must be at most half the root TTL")
	}
	return nil
}

// Phase is the root rotation phase.
type Phase string

// Root rotation phases, in order.
const (
	// PhaseIdle: one root signs, no rotation under way.
	PhaseIdle Phase = "idle"
	// PhasePrepare: a new root has joined the bundle; the old root still
	// signs. Advances when every connected workload holds the new root.
	PhasePrepare Phase = "prepare"
	// PhaseActivate: the new root signs; workloads renew. Advances when
	// every connected workload's SVID chains to the new root.
	PhaseActivate Phase = "activate"
	// PhaseRetire: the old root stays in the bundle until every certificate
	// it signed has expired, then leaves.
	PhaseRetire Phase = "retire"
)

// Authority signs workload certificates. It is safe for concurrent use.
type Authority struct {
	cfg   Config
	rand  io.Reader
	log   *slog.Logger
	mu    sync.Mutex // serializes state changes; reads use state
	state atomic.Pointer[state]
}

// New loads the CA from the store, creating a root and an intermediate on
// first use.
func New(ctx context.Context, cfg Config) (*Authority, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authority{cfg: cfg, rand: cfg.Rand, log: cfg.Logger}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.log == nil {
		a.log = observe.Discard()
	}
	st, err := a.load(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		st, err := a.newState()
		if err != nil {
			return nil, err
		}
		err = a.save(ctx, st)
		switch {
		case errors.Is(err, store.ErrCAConflict):
			// Another control plane created the CA first (save has
			// loaded it): use that one.
			a.log.Info("using the certificate authority another control plane created", observe.KeyFingerprint, a.SigningRootFP())
		case err != nil:
			return nil, err
		default:
			a.log.Info("created certificate authority", observe.KeyFingerprint, identity.Fingerprint(st.signingRoot().cert))
		}
	case err != nil:
		return nil, err
	default:
		a.state.Store(st)
	}
	return a, nil
}

// load reads and checks the CA state in the store.
func (a *Authority) load(ctx context.Context) (*state, error) {
	blob, rev, err := a.cfg.Store.LoadCA(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	st, err := decodeState(blob)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if st.trustDomain != a.cfg.TrustDomain.Name() {
		return nil, fmt.Errorf("load ca: the data dir belongs to trust domain %q, not %q (use another --data-dir)", st.trustDomain, a.cfg.TrustDomain.Name())
	}
	st.rev = rev
	return st, nil
}

// Bundle is the trust bundle: every root a live certificate may chain to.
func (a *Authority) Bundle() []*x509.Certificate {
	st := a.state.Load()
	out := make([]*x509.Certificate, len(st.roots))
	for i, r := range st.roots {
		out[i] = r.cert
	}
	return out
}

// SigningRootFP is the fingerprint of the root that signs now. It changes
// when a root rotation activates, which tells the control plane to reissue
// its own certificates and ask workloads to renew.
func (a *Authority) SigningRootFP() string {
	return identity.Fingerprint(a.state.Load().signingRoot().cert)
}

// Intermediate is the certificate that signs workload certificates now.
func (a *Authority) Intermediate() *x509.Certificate { return a.state.Load().inter.cert }

// TrustDomain is the CA's trust domain.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.cfg.TrustDomain }

// WorkloadTTL is the default lifetime of workload certificates.
func (a *Authority) WorkloadTTL() time.Duration { return a.cfg.WorkloadTTL }

// Sign checks csrDER and signs it for id, valid for ttl (0: the workload
// TTL), capped at the intermediate's own expiry. It returns the chain, leaf
// first. The identity comes from the caller (token or current SVID), never
// from the CSR: a CSR asking for another identity is refused.
func (a *Authority) Sign(ctx context.Context, csrDER []byte, id spiffeid.ID, ttl time.Duration) ([]*x509.Certificate, error) {
	if !id.MemberOf(a.cfg.TrustDomain) {
		return nil, fmt.Errorf("sign: %s is not in trust domain %s", id, a.cfg.TrustDomain)
	}
	csr, err := CheckCSR(csrDER, id)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if ttl <= 0 {
		ttl = a.cfg.WorkloadTTL
	}
	if ttl > maxWorkloadTTL {
		ttl = maxWorkloadTTL
	}
	st := a.state.Load()
	leaf, err := a.signLeaf(st, csr.PublicKey, id, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	rec := store.IssuedCert{
		Serial:   identity.SerialHex(leaf),
		SPIFFEID: id.String(),
		RootFP:   identity.Fingerprint(st.signingRoot().cert),
		NotAfter: leaf.NotAfter,
		IssuedAt: a.cfg.Now(),
	}
	// Recorded before it is handed out: root retirement relies on the log
	// knowing every certificate that may still be live.
	if err := a.cfg.Store.RecordCert(ctx, rec); err != nil {
		return nil, fmt.Errorf("sign: record certificate: %w", err)
	}
	return []*x509.Certificate{leaf, st.inter.cert}, nil
}

func (a *Authority) signLeaf(st *state, pub crypto.PublicKey, id spiffeid.ID, ttl time.Duration) (*x509.Certificate, error) {
	now := a.cfg.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(st.inter.cert.NotAfter) {
		notAfter = st.inter.cert.NotAfter
	}
	serial, err := a.serial()
	if err != nil {
		return nil, err
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshward"}},
		NotBefore:             now.Add(-identity.Backdate),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id.URL()},
	}
	return a.create(tmpl, st.inter.cert, pub, st.inter.key)
}

// RotateIntermediate replaces the signing intermediate now. Certificates
// already issued stay valid: they carry their intermediate in their chain,
// and the root (the only thing in the bundle) does not change.
func (a *Authority) RotateIntermediate(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state.Load().clone()
	inter, err := a.newIntermediate(st.signingRoot())
	if err != nil {
		return fmt.Errorf("rotate intermediate: %w", err)
	}
	st.inter = inter
	if err := a.save(ctx, st); err != nil {
		return fmt.Errorf("rotate intermediate: %w", err)
	}
	a.log.Info("rotated intermediate", observe.KeySerial, identity.SerialHex(inter.cert), observe.KeyNotAfter, inter.cert.NotAfter)
	return nil
}

// NextIntermediateRotation is when Tick rotates the intermediate: at half
// its life.
func (a *Authority) NextIntermediateRotation() time.Time {
	return identity.HalfLife(a.state.Load().inter.cert)
}

// Tick runs what is due: intermediate rotation at half-life, and the start
// of a root rotation when the root has used two thirds of its life. It
// returns whether anything changed.
func (a *Authority) Tick(ctx context.Context) (bool, error) {
	now := a.cfg.Now()
	st := a.state.Load()
	if st.phase == PhaseIdle {
		r := st.signingRoot().cert
		if now.After(r.NotBefore.Add(r.NotAfter.Sub(r.NotBefore) * 2 / 3)) {
			a.log.Warn("root has used two thirds of its life: starting root rotation", observe.KeyNotAfter, r.NotAfter)
			if err := a.StartRootRotation(ctx); err != nil {
				// A lost race reloaded another control plane's CA: that
				// is a change too.
				return errors.Is(err, store.ErrCAConflict), err
			}
			return true, nil
		}
	}
	if now.After(a.NextIntermediateRotation()) {
		return true, a.RotateIntermediate(ctx)
	}
	return false, nil
}

func (a *Authority) serial() (*big.Int, error) {
	// 128 random bits; never zero.
	for {
		n, err := rand.Int(a.rand, new(big.Int).Lsh(big.NewInt(1), 128))
		if err != nil {
			return nil, fmt.Errorf("serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func (a *Authority) create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(a.rand, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func (a *Authority) newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), a.rand)
}

func (a *Authority) newRoot() (keyPair, error) {
	key, err := a.newKey()
	if err != nil {
		return keyPair{}, err
	}
	serial, err := a.serial()
	if err != nil {
		return keyPair{}, err
	}
	now := a.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshward"}, CommonName: "meshward root " + a.cfg.TrustDomain.Name() + " " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore:             now.Add(-identity.Backdate),
		NotAfter:              now.Add(a.cfg.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{a.cfg.TrustDomain.ID().URL()},
	}
	cert, err := a.create(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return keyPair{}, fmt.Errorf("create root: %w", err)
	}
	return keyPair{cert: cert, key: key}, nil
}

func (a *Authority) newIntermediate(root keyPair) (keyPair, error) {
	key, err := a.newKey()
	if err != nil {
		return keyPair{}, err
	}
	serial, err := a.serial()
	if err != nil {
		return keyPair{}, err
	}
	now := a.cfg.Now()
	notAfter := now.Add(a.cfg.IntermediateTTL)
	if notAfter.After(root.cert.NotAfter) {
		notAfter = root.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshward"}, CommonName: "meshward intermediate " + a.cfg.TrustDomain.Name()},
		NotBefore:             now.Add(-identity.Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{a.cfg.TrustDomain.ID().URL()},
	}
	cert, err := a.create(tmpl, root.cert, key.Public(), root.key)
	if err != nil {
		return keyPair{}, fmt.Errorf("create intermediate: %w", err)
	}
	return keyPair{cert: cert, key: key}, nil
}

func (a *Authority) newState() (*state, error) {
	root, err := a.newRoot()
	if err != nil {
		return nil, err
	}
	inter, err := a.newIntermediate(root)
	if err != nil {
		return nil, err
	}
	return &state{
		trustDomain: a.cfg.TrustDomain.Name(),
		roots:       []keyPair{root},
		inter:       inter,
		phase:       PhaseIdle,
		phaseSince:  a.cfg.Now(),
	}, nil
}

// save persists st and then publishes it; readers never see a state that
// is not on disk. The store saves it only if the CA there is still the one
// st was derived from: when another control plane saved first, nothing is
// overwritten, the CA it saved is loaded and published instead, and the
// error wraps store.ErrCAConflict.
func (a *Authority) save(ctx context.Context, st *state) error {
	blob, err := st.encode()
	if err != nil {
		return err
	}
	rev, err := a.cfg.Store.SaveCA(ctx, blob, st.rev)
	if errors.Is(err, store.ErrCAConflict) {
		cur, lerr := a.load(ctx)
		if lerr != nil {
			return fmt.Errorf("save ca: %w; reload: %w", err, lerr)
		}
		a.state.Store(cur)
		return fmt.Errorf("save ca: %w; loaded the CA it saved instead of overwriting it", err)
	}
	if err != nil {
		return fmt.Errorf("save ca: %w", err)
	}
	st.rev = rev // st is not published yet
	a.state.Store(st)
	return nil
}

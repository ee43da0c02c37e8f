package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/svid"
	"meshward.dev/meshward/internal/observe"
)

// trust is how the workload authenticates the control plane before it has
// a bundle: a root pin (from a join token), given roots, or both.
type trust struct {
	pin   string
	roots []*x509.Certificate
}

// firstContact is the bootstrap request the config's evidence makes, and
// what the control plane must chain to before that request is sent.
func firstContact(cfg Config) (*apiv1.BootstrapRequest, trust, error) {
	var (
		req apiv1.BootstrapRequest
		tr  trust
	)
	if len(cfg.Bundle) > 0 {
		roots, err := ParseBundle(cfg.Bundle)
		if err != nil {
			return nil, tr, fmt.Errorf("source: bundle: %w", err)
		}
		tr.roots = roots
	}
	switch {
	case cfg.Evidence != nil && cfg.Token != "":
		return nil, tr, errors.New("source: give a join token or other evidence, not both")
	case cfg.Evidence != nil:
		if cfg.Evidence.Type == "" {
			return nil, tr, errors.New("source: evidence needs a type (the attestor's name)")
		}
		if tr.roots == nil {
			return nil, tr, fmt.Errorf("source: %s evidence carries no CA pin: give the control plane's bundle", cfg.Evidence.Type)
		}
		req.Attestation = &apiv1.AttestationData{Type: cfg.Evidence.Type, Payload: cfg.Evidence.Payload}
	default:
		tok, err := attest.ParseToken(cfg.Token)
		if err != nil {
			return nil, tr, err
		}
		req.Token, tr.pin = tok.String(), tok.Pin
	}
	return &req, tr, nil
}

// ParseBundle reads a bundle given to a workload: PEM CA certificates,
// at least one; anything else in it is an error.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	var roots []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, errors.New("data that is not PEM")
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %q PEM block, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA", c.Subject)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, errors.New("no certificates")
	}
	return roots, nil
}

func (s *Session) bootstrap(ctx context.Context, req *apiv1.BootstrapRequest, tr trust) error {
	var td spiffeid.TrustDomain
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, //nolint:gosec // replaced by the pin and bundle checks in VerifyConnection
		NextProtos:         []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			got, err := verifyFirst(cs.PeerCertificates, tr, s.cfg.TrustDomain, s.cfg.Now())
			td = got
			return err
		},
	}
	conn, err := grpc.NewClient(s.cfg.ControlAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer conn.Close()
	key, csr, err := identity.NewKeyAndCSR()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	req.Csr = csr
	resp, err := apiv1.NewControlClient(conn).Bootstrap(ctx, req)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.ids = svid.New(td, s.cfg.Now)
	if err := s.install(resp, key); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.log.Info("bootstrapped workload identity", observe.KeySPIFFEID, resp.GetSpiffeId())
	return nil
}

// verifyFirst authenticates the control plane before the workload has a
// bundle of its own: by the given roots, by the pin, and by both when both
// are set (a trust with neither is refused).
func verifyFirst(chain []*x509.Certificate, tr trust, want spiffeid.TrustDomain, now time.Time) (spiffeid.TrustDomain, error) {
	if tr.pin == "" && tr.roots == nil {
		return spiffeid.TrustDomain{}, errors.New("nothing to authenticate the control plane by")
	}
	var td spiffeid.TrustDomain
	if tr.roots != nil {
		got, err := verifyBundle(chain, tr.roots, want, now)
		if err != nil {
			return got, err
		}
		td = got
	}
	if tr.pin != "" {
		got, err := verifyPinned(chain, tr.pin, want)
		if err != nil {
			return got, err
		}
		td = got
	}
	return td, nil
}

// verifyBundle checks that the presented chain verifies under the given
// roots and names the control plane.
func verifyBundle(chain []*x509.Certificate, roots []*x509.Certificate, want spiffeid.TrustDomain, now time.Time) (spiffeid.TrustDomain, error) {
	if len(chain) == 0 {
		return spiffeid.TrustDomain{}, errors.New("control plane presented no certificate")
	}
	td, err := controlTrustDomain(chain[0], want)
	if err != nil {
		return td, err
	}
	bundle := x509bundle.FromX509Authorities(td, roots)
	if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(now)); err != nil {
		return td, fmt.Errorf("control plane's certificate does not chain to the given bundle (wrong control plane, or a man in the middle): %w", err)
	}
	return td, nil
}

// controlTrustDomain is the trust domain of a certificate that must name
// the control plane (of want, when set).
func controlTrustDomain(leaf *x509.Certificate, want spiffeid.TrustDomain) (spiffeid.TrustDomain, error) {
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("control plane certificate: %w", err)
	}
	td := id.TrustDomain()
	if id != identity.ControlID(td) {
		return td, fmt.Errorf("server is %s, not the control plane", id)
	}
	if !want.IsZero() && td != want {
		return td, fmt.Errorf("control plane is in trust domain %s, want %s", td, want)
	}
	return td, nil
}

// verifyPinned authenticates the control plane by a join token's pin: the
// presented chain must end in a self-signed root whose public key matches
// the pin, verify under it, and name the control plane.
func verifyPinned(chain []*x509.Certificate, pin string, want spiffeid.TrustDomain) (spiffeid.TrustDomain, error) {
	if len(chain) < 2 {
		return spiffeid.TrustDomain{}, errors.New("control plane presented no CA chain")
	}
	root := chain[len(chain)-1]
	if identity.SPKIPin(root) != pin {
		return spiffeid.TrustDomain{}, errors.New("control plane's CA does not match the join token's pin (wrong control plane, or a man in the middle)")
	}
	td, err := controlTrustDomain(chain[0], want)
	if err != nil {
		return td, err
	}
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	if _, _, err := x509svid.Verify(chain[:len(chain)-1], bundle); err != nil {
		return td, fmt.Errorf("control plane certificate: %w", err)
	}
	return td, nil
}

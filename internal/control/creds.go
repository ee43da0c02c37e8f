package control

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// Admin credential files, under <data dir>/admin. The CLI reads them for
// admin calls (token create, ca rotate, policy apply, ...).
const (
	AdminDir        = "admin"
	AdminCertFile   = "svid.pem"   // admin SVID chain
	AdminKeyFile    = "key.pem"    // its private key (0600)
	AdminBundleFile = "bundle.pem" // the trust bundle
	AddrFile        = "control-addr"
)

// refreshCredentials (re)issues the control plane's serving certificate and
// the admin credential when missing, past half-life, or chained to a root
// that no longer signs.
func (s *Server) refreshCredentials(ctx context.Context, force bool) error {
	signer := s.cfg.CA.SigningRootFP()
	if c := s.cert.Load(); force || c == nil || s.stale(c.Leaf) || s.certFP.Load() != signer {
		cert, err := s.issueOwn(ctx, identity.ControlID(s.cfg.TrustDomain), 0)
		if err != nil {
			return fmt.Errorf("issue control plane certificate: %w", err)
		}
		// The root goes on the wire too: a workload that has only a join
		// token checks it against the token's pin (see session.verifyPinned).
		for _, r := range s.cfg.CA.Bundle() {
			if identity.Fingerprint(r) == signer {
				cert.Certificate = append(cert.Certificate, r.Raw)
			}
		}
		s.cert.Store(cert)
		s.certFP.Store(signer)
		s.log.Info("control plane certificate issued", observe.KeySerial, identity.SerialHex(cert.Leaf), observe.KeyNotAfter, cert.Leaf.NotAfter)
	}
	return s.writeAdmin(ctx, signer)
}

func (s *Server) stale(c *x509.Certificate) bool {
	return s.cfg.Now().After(identity.HalfLife(c))
}

func (s *Server) issueOwn(ctx context.Context, id spiffeid.ID, ttl time.Duration) (*tls.Certificate, error) {
	key, csr, err := identity.NewKeyAndCSR()
	if err != nil {
		return nil, err
	}
	chain, err := s.cfg.CA.Sign(ctx, csr, id, ttl)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// writeAdmin keeps <data dir>/admin current: a fresh admin SVID when the
// old one is missing, stale or from a retiring root, and the bundle.
func (s *Server) writeAdmin(ctx context.Context, signer string) error {
	dir := filepath.Join(s.cfg.DataDir, AdminDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(dir, AdminBundleFile), pemCerts(s.cfg.CA.Bundle())); err != nil {
		return err
	}
	certPath := filepath.Join(dir, AdminCertFile)
	if cur, err := loadChain(certPath); err == nil && !s.stale(cur[0]) && s.chainsTo(cur, signer) {
		return nil
	}
	c, err := s.issueOwn(ctx, identity.AdminID(s.cfg.TrustDomain), s.cfg.AdminTTL)
	if err != nil {
		return fmt.Errorf("issue admin credential: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	// Key first: a reader never pairs a new certificate with an old key
	// for long, and both files are replaced atomically.
	if err := writeAtomic(filepath.Join(dir, AdminKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	var chain []*x509.Certificate
	for _, der := range c.Certificate {
		x, _ := x509.ParseCertificate(der)
		chain = append(chain, x)
	}
	if err := writeAtomic(certPath, pemCerts(chain)); err != nil {
		return err
	}
	s.log.Info("admin credential written", "dir", dir, observe.KeyNotAfter, c.Leaf.NotAfter)
	return nil
}

// chainsTo reports whether chain (leaf first) verifies under the root
// with fingerprint rootFP alone.
func (s *Server) chainsTo(chain []*x509.Certificate, rootFP string) bool {
	for _, r := range s.cfg.CA.Bundle() {
		if identity.Fingerprint(r) != rootFP {
			continue
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(r)
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: s.cfg.Now()})
		return err == nil
	}
	return false
}

func loadChain(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return out, nil
}

func pemCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func writeIfChanged(path string, data []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return writeAtomic(path, data)
}

// writeAtomic writes data to path with mode 0600 via a rename, so readers
// never see a half-written file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

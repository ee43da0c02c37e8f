// Package testpki makes throwaway certificate authorities and leaf
// certificates for tests: SPIFFE X.509-SVIDs, plain TLS server certificates,
// and deliberately broken ones (expired, weak keys, wrong trust domain).
// Never use it outside tests.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CA is a certificate authority for one trust domain.
type CA struct {
	Cert        *x509.Certificate
	Key         crypto.Signer
	TrustDomain spiffeid.TrustDomain
	parent      *CA // nil for a root
}

// NewCA returns a self-signed root CA for trustDomain, valid from an hour ago
// for a day.
func NewCA(t testing.TB, trustDomain string) *CA {
	t.Helper()
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		t.Fatalf("testpki: trust domain: %v", err)
	}
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"testpki"}, CommonName: "root " + trustDomain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	return &CA{Cert: create(t, tmpl, tmpl, key.Public(), key), Key: key, TrustDomain: td}
}

// Intermediate returns a CA signed by ca.
func (ca *CA) Intermediate(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"testpki"}, CommonName: "intermediate"},
		NotBefore:             ca.Cert.NotBefore,
		NotAfter:              ca.Cert.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{ca.TrustDomain.ID().URL()},
	}
	return &CA{Cert: create(t, tmpl, ca.Cert, key.Public(), ca.Key), Key: key, TrustDomain: ca.TrustDomain, parent: ca}
}

// Bundle is the trust bundle holding this CA's root.
func (ca *CA) Bundle() *x509bundle.Bundle {
	root := ca
	for root.parent != nil {
		root = root.parent
	}
	return x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{root.Cert})
}

// Pool is an x509.CertPool holding this CA's root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range ca.Bundle().X509Authorities() {
		p.AddCert(c)
	}
	return p
}

// Leaf describes a leaf certificate; zero fields take working defaults.
type Leaf struct {
	NotBefore, NotAfter time.Time     // default: an hour ago, an hour from now
	Key                 crypto.Signer // default: a fresh ECDSA P-256 key
	DNSNames            []string
	IPs                 []net.IP
	URIs                []*url.URL
	SignatureAlgorithm  x509.SignatureAlgorithm
	// ExtKeyUsage defaults to serverAuth and clientAuth, as an SVID has;
	// NoExtKeyUsage leaves the extension out.
	ExtKeyUsage   []x509.ExtKeyUsage
	NoExtKeyUsage bool
}

// SVID issues an X.509-SVID for the SPIFFE ID id, valid for an hour either
// side of now.
func (ca *CA) SVID(t testing.TB, id string) *x509svid.SVID {
	t.Helper()
	sid, err := spiffeid.FromString(id)
	if err != nil {
		t.Fatalf("testpki: spiffe id: %v", err)
	}
	return ca.IssueSVID(t, sid, Leaf{})
}

// IssueSVID issues an X.509-SVID for id with the given leaf settings.
func (ca *CA) IssueSVID(t testing.TB, id spiffeid.ID, l Leaf) *x509svid.SVID {
	t.Helper()
	l.URIs = []*url.URL{id.URL()}
	cert, key := ca.issue(t, l)
	chain := []*x509.Certificate{cert}
	for c := ca; c.parent != nil; c = c.parent {
		chain = append(chain, c.Cert)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// TLSCert issues a certificate for l (a server or client certificate that is
// not necessarily an SVID) and returns it ready for crypto/tls.
func (ca *CA) TLSCert(t testing.TB, l Leaf) tls.Certificate {
	t.Helper()
	cert, key := ca.issue(t, l)
	chain := [][]byte{cert.Raw}
	for c := ca; c.parent != nil; c = c.parent {
		chain = append(chain, c.Cert.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: cert}
}

func (ca *CA) issue(t testing.TB, l Leaf) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	now := time.Now()
	if l.NotBefore.IsZero() {
		l.NotBefore = now.Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = now.Add(time.Hour)
	}
	if l.Key == nil {
		l.Key = newKey(t)
	}
	if l.ExtKeyUsage == nil && !l.NoExtKeyUsage {
		l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		NotBefore:             l.NotBefore,
		NotAfter:              l.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           l.ExtKeyUsage,
		DNSNames:              l.DNSNames,
		IPAddresses:           l.IPs,
		URIs:                  l.URIs,
		SignatureAlgorithm:    l.SignatureAlgorithm,
	}
	return create(t, tmpl, ca.Cert, l.Key.Public(), ca.Key), l.Key
}

// PEM encodes certificates as concatenated PEM CERTIFICATE blocks.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	return n
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatalf("testpki: create certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parse certificate: %v", err)
	}
	return c
}

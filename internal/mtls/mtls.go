package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ALPN protocol IDs spoken between sidecars. The client offers exactly one;
// the server accepts only the ones its application protocol allows, so an L4
// stream can never bypass per-request (L7) policy.
const (
	// ALPNHTTP2 carries HTTP/2 and gRPC requests (and HTTP/1.1 ones when
	// the http/1.1 pool is busy), multiplexed.
	ALPNHTTP2 = "h2"
	// ALPNHTTP1 carries HTTP/1.1 requests on keep-alive connections, one
	// at a time, and Upgrade requests (e.g. WebSocket).
	ALPNHTTP1 = "http/1.1"
	// ALPNTCP carries one raw TCP byte stream per connection.
	ALPNTCP = "meshward-tcp"
)

// Authorizer decides whether a peer whose X.509-SVID verified against the
// trust bundle may complete the handshake. It is called on every handshake,
// resumed ones included.
type Authorizer func(id spiffeid.ID, verifiedChains [][]*x509.Certificate) error

// ErrUnauthorized is wrapped by the errors of the authorizers in this package.
var ErrUnauthorized = errors.New("peer not authorized")

// AuthorizeMemberOf accepts any SPIFFE ID of trust domain td.
func AuthorizeMemberOf(td spiffeid.TrustDomain) Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if id.TrustDomain() != td {
			return fmt.Errorf("%w: %s is not in trust domain %s", ErrUnauthorized, id, td)
		}
		return nil
	}
}

// AuthorizeID accepts exactly the SPIFFE ID want.
func AuthorizeID(want spiffeid.ID) Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if id != want {
			return fmt.Errorf("%w: got %s, want %s", ErrUnauthorized, id, want)
		}
		return nil
	}
}

// Options tune both builders; the zero value is the secure default.
type Options struct {
	// NextProtos are the ALPN IDs offered (client) or accepted (server).
	NextProtos []string
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

// ServerConfig returns the config for an inbound (mTLS server) listener:
// TLS 1.3 only, a client certificate is required, the server certificate is
// read from svid and the client chain is verified against bundle on every
// handshake, then passed to authorize.
func ServerConfig(svid x509svid.Source, bundle x509bundle.Source, authorize Authorizer, o Options) *tls.Config {
	certs := &certCache{src: svid}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert, // chains are verified in VerifyConnection
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certs.get()
		},
		VerifyConnection: verifyConnection(bundle, authorize, o.Now, x509.ExtKeyUsageClientAuth),
		NextProtos:       o.NextProtos,
		Time:             o.Now,
	}
}

// ClientConfig returns the config for an outbound (mTLS client) connection:
// TLS 1.3 only, the client certificate is read from svid on every handshake
// and the server's chain is verified against bundle and passed to authorize
// (normally AuthorizeID of the one expected upstream identity). DNS names
// are not checked: the SPIFFE ID is the server's name.
func ClientConfig(svid x509svid.Source, bundle x509bundle.Source, authorize Authorizer, o Options) *tls.Config {
	certs := &certCache{src: svid}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return certs.get()
		},
		// Hostname verification does not apply to SPIFFE; VerifyConnection
		// verifies the chain and the ID on every connection instead.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verifyConnection(bundle, authorize, o.Now, x509.ExtKeyUsageServerAuth),
		NextProtos:         o.NextProtos,
		Time:               o.Now,
	}
}

// verifyConnection runs on every handshake, full or resumed: it verifies the
// peer chain against the current bundle, checks that the leaf may be used
// for the peer's role (usage: clientAuth for a caller, serverAuth for a
// server) and authorizes the SPIFFE ID.
func verifyConnection(bundle x509bundle.Source, authorize Authorizer, now func() time.Time, usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return ErrNoPeerCertificate
		}
		var opts []x509svid.VerifyOption
		if now != nil {
			opts = append(opts, x509svid.WithTime(now()))
		}
		id, chains, err := x509svid.Verify(cs.PeerCertificates, bundle, opts...)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUntrusted, classify(cs.PeerCertificates[0], bundle, now, err))
		}
		if !allowsUsage(cs.PeerCertificates[0], usage) {
			return fmt.Errorf("%w: %w", ErrUntrusted, ErrKeyUsage)
		}
		return authorize(id, chains)
	}
}

// classify names why a chain did not verify, for metrics and logs: a leaf
// outside its validity window, or a SPIFFE ID of a trust domain we hold no
// bundle for; otherwise err as it is (unknown CA, malformed SVID).
func classify(leaf *x509.Certificate, bundle x509bundle.Source, now func() time.Time, err error) error {
	t := time.Now()
	if now != nil {
		t = now()
	}
	if t.After(leaf.NotAfter) || t.Before(leaf.NotBefore) {
		return fmt.Errorf("%w: %w", ErrExpired, err)
	}
	if id, idErr := x509svid.IDFromCert(leaf); idErr == nil {
		if _, bErr := bundle.GetX509BundleForTrustDomain(id.TrustDomain()); bErr != nil {
			return fmt.Errorf("%w: %w", ErrWrongTrustDomain, err)
		}
	}
	return err
}

// allowsUsage reports whether leaf names usage (or any usage) among its
// extended key usages. x509svid.Verify accepts any usage, and a leaf
// without the extension would be valid for every purpose under RFC 5280:
// both are refused, so a certificate issued for serving alone (or for
// something else entirely) cannot be presented as a caller's. meshward's CA
// issues every SVID with serverAuth and clientAuth, as SPIRE does.
func allowsUsage(leaf *x509.Certificate, usage x509.ExtKeyUsage) bool {
	for _, u := range leaf.ExtKeyUsage {
		if u == usage || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// ErrKeyUsage is wrapped (with ErrUntrusted) when the peer's leaf does not
// allow the role it plays: clientAuth for a caller, serverAuth for a server.
var ErrKeyUsage = errors.New("certificate not issued for this role (extended key usage)")

// ErrExpired is wrapped (with ErrUntrusted) when the peer's certificate is
// expired or not yet valid.
var ErrExpired = errors.New("certificate expired or not yet valid")

// ErrWrongTrustDomain is wrapped (with ErrUntrusted) when the peer's SPIFFE
// ID is of a trust domain this side has no bundle for.
var ErrWrongTrustDomain = errors.New("SPIFFE ID of another trust domain")

// ErrNoPeerCertificate means the peer sent no certificate.
var ErrNoPeerCertificate = errors.New("peer sent no certificate")

// ErrUntrusted is wrapped when the peer chain does not verify as an
// X.509-SVID against the current trust bundle (unknown CA, expired, no or
// several URI SANs, another trust domain with no bundle).
var ErrUntrusted = errors.New("peer certificate not trusted")

// PeerID returns the SPIFFE ID of a peer whose handshake completed with a
// config from this package (the chain has been verified already).
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, ErrNoPeerCertificate
	}
	return x509svid.IDFromCert(cs.PeerCertificates[0])
}

// certCache converts the source's current SVID to a tls.Certificate once per
// SVID instead of once per handshake. Sources hand out the same *SVID until
// they rotate, so a pointer comparison is enough.
type certCache struct {
	src x509svid.Source
	cur atomic.Pointer[cachedCert]
}

type cachedCert struct {
	svid *x509svid.SVID
	cert *tls.Certificate
}

func (c *certCache) get() (*tls.Certificate, error) {
	s, err := c.src.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("get svid: %w", err)
	}
	if cc := c.cur.Load(); cc != nil && cc.svid == s {
		return cc.cert, nil
	}
	if len(s.Certificates) == 0 {
		return nil, errors.New("get svid: no certificates")
	}
	cert := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, sc := range s.Certificates {
		cert.Certificate = append(cert.Certificate, sc.Raw)
	}
	c.cur.Store(&cachedCert{svid: s, cert: cert})
	return cert, nil
}

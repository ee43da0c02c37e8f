package control

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store/bolt"
	"meshward.dev/meshward/internal/testpki"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// testEnv is a control plane on a loopback port with a skewable clock.
type testEnv struct {
	t     testing.TB
	dir   string
	srv   *Server
	store *bolt.Store
	ca    *ca.Authority
	admin *AdminClient
	skew  atomic.Int64 // added to time.Now, for expiry tests
}

type envOpts struct {
	workloadTTL, intermediateTTL, adminTTL time.Duration
	logger                                 *slog.Logger
	attestors                              []attest.Attestor
}

func hashPolicy(files []policy.File, _ []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Name))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func startEnv(t testing.TB, o envOpts) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir()}
	now := func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	st, err := bolt.Open(e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	ctx, cancel := context.WithCancel(context.Background())
	a, err := ca.New(ctx, ca.Config{TrustDomain: td, Store: st, Now: now, WorkloadTTL: o.workloadTTL, IntermediateTTL: o.intermediateTTL})
	if err != nil {
		t.Fatal(err)
	}
	e.ca = a
	srv, err := New(ctx, Config{TrustDomain: td, Listen: "127.0.0.1:0", DataDir: e.dir, Store: st, CA: a, CheckPolicy: hashPolicy, Now: now, TickInterval: 100 * time.Millisecond, AdminTTL: o.adminTTL, Logger: o.logger, Attestors: o.attestors})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	admin, err := DialAdmin(e.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = admin
	t.Cleanup(func() {
		admin.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
		st.Close()
	})
	return e
}

func (e *testEnv) token(service string, ttl time.Duration) string {
	e.t.Helper()
	resp, err := e.admin.CreateToken(context.Background(), &apiv1.CreateTokenRequest{Service: service, Namespace: "default", TtlSeconds: int64(ttl / time.Second)})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Token
}

func (e *testEnv) session(service string) *session.Session {
	e.t.Helper()
	src, err := session.New(context.Background(), session.Config{ControlAddr: e.srv.Addr().String(), Token: e.token(service, time.Minute), TrustDomain: td, ReportInterval: 100 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { src.Close() })
	return src
}

// conn dials the control plane presenting cert (nil: none).
func (e *testEnv) conn(cert *tls.Certificate) apiv1.ControlClient {
	e.t.Helper()
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // these tests attack the server, not the client
		NextProtos:         []string{"h2"},
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	c, err := grpc.NewClient(e.srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return apiv1.NewControlClient(c)
}

// issuedCount counts workload certificates in the issued-certificate log
// (the control plane's own certificates renew on its schedule).
func (e *testEnv) issuedCount() int {
	e.t.Helper()
	certs, err := e.store.IssuedCerts(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range certs {
		if strings.Contains(c.SPIFFEID, "/ns/") {
			n++
		}
	}
	return n
}

func csr(t *testing.T, key crypto.Signer, uri string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tlsCert(s *x509svid.SVID) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, x := range s.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func TestBootstrapGivesTheTokensIdentity(t *testing.T) {
	e := startEnv(t, envOpts{})
	src := e.session("web").Holder()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	want := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	if svid.ID != want {
		t.Fatalf("id = %s, want %s", svid.ID, want)
	}
	bundle, err := src.GetX509BundleForTrustDomain(td)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Fatalf("SVID does not verify against the bundle: %v", err)
	}
}

func TestBootstrapRefusesWrongPin(t *testing.T) {
	e := startEnv(t, envOpts{})
	tok := e.token("web", time.Minute)
	forged := tok[:len(tok)-64] + "00000000000000000000000000000000000000000000000000000000000000aa"
	_, err := session.New(context.Background(), session.Config{ControlAddr: e.srv.Addr().String(), Token: forged})
	if err == nil {
		t.Fatal("bootstrapped against a control plane whose CA does not match the pin")
	}
	// And the token was not spent by the failed attempt: the real one works.
	if _, err := session.New(context.Background(), session.Config{ControlAddr: e.srv.Addr().String(), Token: tok}); err != nil {
		t.Fatalf("the genuine token no longer works: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	noCert := e.conn(nil)
	webSrc := e.session("web").Holder()
	webSVID, _ := webSrc.GetX509SVID()
	asWeb := e.conn(tlsCert(webSVID))

	evil := testpki.NewCA(t, "evil.org")
	otherTD := evil.SVID(t, "spiffe://evil.org/ns/default/sa/web")
	rogue := testpki.NewCA(t, "example.org") // same name, another CA
	rogueSVID := rogue.SVID(t, "spiffe://example.org/ns/default/sa/web")

	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	badSig := csr(t, p256(t), "")
	badSig[len(badSig)-3] ^= 0xff

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"replayed token", func() error {
			tok := e.token("api", time.Minute)
			if _, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "")}); err != nil {
				t.Fatalf("first use: %v", err)
			}
			_, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "")})
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "already used") || !strings.Contains(msg, "meshward token create") {
				t.Errorf("a replayed token's refusal %q does not say to mint a new one", msg)
			}
			return err
		}, codes.Unauthenticated},
		{"expired token", func() error {
			tok := e.token("api", time.Second)
			e.skew.Store(int64(2 * time.Second))
			defer e.skew.Store(0)
			_, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unauthenticated},
		{"token for A, CSR for B", func() error {
			tok := e.token("web", time.Minute)
			_, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "spiffe://example.org/ns/default/sa/payments")})
			return err
		}, codes.InvalidArgument},
		{"unknown token", func() error {
			_, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: "mwt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.0000000000000000000000000000000000000000000000000000000000000000", Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unauthenticated},
		{"weak CSR key", func() error {
			_, err := noCert.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: e.token("web", time.Minute), Csr: csr(t, weak, "")})
			return err
		}, codes.InvalidArgument},
		{"CSR with a bad signature", func() error {
			_, err := asWeb.Renew(ctx, &apiv1.RenewRequest{Csr: badSig})
			return err
		}, codes.InvalidArgument},
		{"renewal for another identity", func() error {
			_, err := asWeb.Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "spiffe://example.org/ns/default/sa/payments")})
			return err
		}, codes.InvalidArgument},
		{"renewal without a certificate", func() error {
			_, err := noCert.Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unauthenticated},
		{"client cert from another trust domain", func() error {
			_, err := e.conn(tlsCert(otherTD)).Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unavailable},
		{"client cert from another CA", func() error {
			_, err := e.conn(tlsCert(rogueSVID)).Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unavailable},
		{"expired client cert", func() error {
			e.skew.Store(int64(2 * time.Hour))
			defer e.skew.Store(0)
			_, err := e.conn(tlsCert(webSVID)).Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")})
			return err
		}, codes.Unavailable},
		{"workload calling an admin API", func() error {
			_, err := asWeb.CreateToken(ctx, &apiv1.CreateTokenRequest{Service: "payments"})
			return err
		}, codes.PermissionDenied},
		{"no certificate calling an admin API", func() error {
			_, err := noCert.RotateCA(ctx, &apiv1.RotateCARequest{Root: true})
			return err
		}, codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			issued := e.issuedCount()
			phase := e.ca.Phase()
			err := tc.call()
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			// Only "replayed token" legitimately issued one cert (its first use).
			extra := 0
			if tc.name == "replayed token" {
				extra = 1
			}
			if got := e.issuedCount(); got != issued+extra {
				t.Fatalf("issued-certificate log grew from %d to %d", issued, got)
			}
			if e.ca.Phase() != phase {
				t.Fatal("CA state changed")
			}
		})
	}
}

func TestRefusedCSRLeavesTokenUsable(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	c := e.conn(nil)
	tok := e.token("web", time.Minute)
	if _, err := c.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "spiffe://example.org/ns/default/sa/payments")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CSR for another identity: %v", err)
	}
	resp, err := c.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: tok, Csr: csr(t, p256(t), "")})
	if err != nil {
		t.Fatalf("token unusable after a refused attempt: %v", err)
	}
	if resp.SpiffeId != "spiffe://example.org/ns/default/sa/web" {
		t.Fatalf("issued %s", resp.SpiffeId)
	}
}

func TestBanStopsIssuance(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	web := e.session("web").Holder()
	svid, _ := web.GetX509SVID()
	if _, err := e.admin.Ban(ctx, &apiv1.BanRequest{SpiffeId: svid.ID.String(), Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn(tlsCert(svid)).Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("renew while banned: %v", err)
	}
	if _, err := e.admin.CreateToken(ctx, &apiv1.CreateTokenRequest{Service: "web"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("token for a banned identity: %v", err)
	}
	if _, err := e.admin.Unban(ctx, &apiv1.BanRequest{SpiffeId: svid.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn(tlsCert(svid)).Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "")}); err != nil {
		t.Fatalf("renew after unban: %v", err)
	}
	events, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var bans int
	for _, ev := range events {
		if ev.Action == "identity.ban" || ev.Action == "identity.unban" {
			bans++
		}
	}
	if bans != 2 {
		t.Fatalf("audit has %d ban/unban events, want 2", bans)
	}
}

var _ = identity.ControlID
var _ = tlsconfig.AuthorizeAny

// BenchmarkBootstrap is the bootstrap round trip as a workload sees it:
// key + CSR, TLS 1.3 to the control plane with the pin check, token
// redemption, signing, and verification of the answer. Minting the token
// (an admin call) is excluded from the timing.
func BenchmarkBootstrap(b *testing.B) {
	e := startEnv(b, envOpts{})
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		resp, err := e.admin.CreateToken(ctx, &apiv1.CreateTokenRequest{Service: "web", TtlSeconds: 60})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		src, err := session.New(ctx, session.Config{ControlAddr: e.srv.Addr().String(), Token: resp.Token})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		src.Close()
		b.StartTimer()
	}
}

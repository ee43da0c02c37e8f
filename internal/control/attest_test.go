package control

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/testpki"
)

// testAttestor is a second attestor, to prove the seam: its evidence is
// "service=NAME" (the workload spiffe://example.org/ns/default/sa/NAME) and
// it refuses anything else. It counts the evidence it was shown.
type testAttestor struct{ calls atomic.Int64 }

func (*testAttestor) Name() string { return "test" }

func (a *testAttestor) Attest(_ context.Context, evidence []byte, accept func(attest.Verdict) error) (attest.Verdict, error) {
	a.calls.Add(1)
	name, ok := strings.CutPrefix(string(evidence), "service=")
	if !ok {
		return attest.Verdict{}, fmt.Errorf("%w: test evidence is service=NAME", attest.ErrRefused)
	}
	id, err := spiffeid.FromSegments(td, "ns", "default", "sa", name)
	if err != nil {
		return attest.Verdict{}, fmt.Errorf("%w: %w", attest.ErrRefused, err)
	}
	v := attest.Verdict{ID: id}
	if err := accept(v); err != nil {
		return attest.Verdict{}, err
	}
	return v, nil
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// bundlePEM is the control plane's trust bundle as a workload is given it.
func (e *testEnv) bundlePEM() []byte { return testpki.PEM(e.ca.Bundle()...) }

// TestAttestorSeam: an attestor other than join tokens plugs in through the
// same Bootstrap RPC, with the workload trusting the control plane by a
// bundle it was given; the SVID is for the attestor's verdict.
func TestAttestorSeam(t *testing.T) {
	a := &testAttestor{}
	e := startEnv(t, envOpts{attestors: []attest.Attestor{a}})
	src, err := session.New(context.Background(), session.Config{
		ControlAddr: e.srv.Addr().String(), TrustDomain: td,
		Evidence: &session.Evidence{Type: "test", Payload: []byte("service=web")},
		Bundle:   e.bundlePEM(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	svid, err := src.Holder().GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if want := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web"); svid.ID != want {
		t.Fatalf("id = %s, want %s", svid.ID, want)
	}
	bundle, err := src.Holder().GetX509BundleForTrustDomain(td)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Fatalf("SVID does not verify against the bundle: %v", err)
	}
	if got := counterValue(t, e.srv.m.certsIssued.WithLabelValues("bootstrap")); got != 1 {
		t.Errorf("bootstrap certificates issued = %v, want 1", got)
	}
	if got := counterValue(t, e.srv.m.tokens.WithLabelValues("used")); got != 0 {
		t.Errorf("join tokens used = %v, want 0: no token was involved", got)
	}
}

// TestAttestorRefusals: with another attestor the CA still signs only for
// the verdict, and each refusal has its code and reason label.
func TestAttestorRefusals(t *testing.T) {
	a := &testAttestor{}
	e := startEnv(t, envOpts{attestors: []attest.Attestor{a}})
	ctx := context.Background()
	c := e.conn(nil)
	ev := func(payload string) *apiv1.AttestationData {
		return &apiv1.AttestationData{Type: "test", Payload: []byte(payload)}
	}
	if _, err := e.admin.Ban(ctx, &apiv1.BanRequest{SpiffeId: "spiffe://example.org/ns/default/sa/evil", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    *apiv1.BootstrapRequest
		want   codes.Code
		reason string
	}{
		{"CSR for another identity", &apiv1.BootstrapRequest{Attestation: ev("service=web"), Csr: csr(t, p256(t), "spiffe://example.org/ns/default/sa/payments")}, codes.InvalidArgument, "bad_csr"},
		{"attestor refuses", &apiv1.BootstrapRequest{Attestation: ev("let me in"), Csr: csr(t, p256(t), "")}, codes.Unauthenticated, "attestation_refused"},
		{"banned verdict", &apiv1.BootstrapRequest{Attestation: ev("service=evil"), Csr: csr(t, p256(t), "")}, codes.PermissionDenied, "banned"},
		{"unknown evidence type", &apiv1.BootstrapRequest{Attestation: &apiv1.AttestationData{Type: "k8s_psat"}, Csr: csr(t, p256(t), "")}, codes.InvalidArgument, "bad_evidence"},
		{"token and other evidence", &apiv1.BootstrapRequest{Token: e.token("web", time.Minute), Attestation: ev("service=web"), Csr: csr(t, p256(t), "")}, codes.InvalidArgument, "bad_evidence"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			issued := e.issuedCount()
			refused := counterValue(t, e.srv.m.certsRefused.WithLabelValues(tc.reason))
			_, err := c.Bootstrap(ctx, tc.req)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			if got := counterValue(t, e.srv.m.certsRefused.WithLabelValues(tc.reason)); got != refused+1 {
				t.Errorf("refusals with reason %q went from %v to %v, want one more", tc.reason, refused, got)
			}
			if got := e.issuedCount(); got != issued {
				t.Fatalf("issued-certificate log grew from %d to %d", issued, got)
			}
		})
	}
	if got := counterValue(t, e.srv.m.tokens.WithLabelValues("refused")); got != 0 {
		t.Errorf("join tokens refused = %v, want 0: no request was the join token attestor's", got)
	}
	// The token in the mixed request was never redeemed.
	if _, err := c.Bootstrap(ctx, &apiv1.BootstrapRequest{Token: e.token("api", time.Minute), Csr: csr(t, p256(t), "")}); err != nil {
		t.Fatalf("join tokens stopped working beside another attestor: %v", err)
	}
}

// TestBootstrapRefusesRogueControlPlane: a workload that holds the genuine
// control plane's bundle, its join token, or both, refuses a rogue control
// plane (same trust domain, another CA) before it sends its evidence.
func TestBootstrapRefusesRogueControlPlane(t *testing.T) {
	genuine := startEnv(t, envOpts{})
	a := &testAttestor{}
	rogue := startEnv(t, envOpts{attestors: []attest.Attestor{a}})
	tok := genuine.token("web", time.Minute)
	const notBundle, notPin = "does not chain to the given bundle", "does not match the join token's pin"
	tests := []struct {
		name    string
		cfg     session.Config
		wantErr string
	}{
		{"bundle and other evidence", session.Config{Evidence: &session.Evidence{Type: "test", Payload: []byte("service=web")}, Bundle: genuine.bundlePEM()}, notBundle},
		{"token pin", session.Config{Token: tok}, notPin},
		{"token and bundle", session.Config{Token: tok, Bundle: genuine.bundlePEM()}, notBundle},
		// The pin is the rogue's own (a token it minted), the bundle the
		// genuine one: both must hold.
		{"rogue token, genuine bundle", session.Config{Token: rogue.token("web", time.Minute), Bundle: genuine.bundlePEM()}, notBundle},
		{"genuine token, rogue bundle", session.Config{Token: tok, Bundle: rogue.bundlePEM()}, notPin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ControlAddr = rogue.srv.Addr().String()
			_, err := session.New(context.Background(), cfg)
			if err == nil {
				t.Fatal("bootstrapped against a control plane that does not chain to the pin or bundle")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
	if n := a.calls.Load(); n != 0 {
		t.Errorf("the rogue control plane's attestor was shown evidence %d times", n)
	}
	// The genuine control plane: the bundle alone, and with the unspent token.
	if _, err := session.New(context.Background(), session.Config{ControlAddr: genuine.srv.Addr().String(), Token: tok, Bundle: genuine.bundlePEM()}); err != nil {
		t.Fatalf("token with the genuine bundle: %v", err)
	}
}

// TestConfigRefusesDuplicateAttestors: an attestor's name picks it, so two
// may not share one, nor take join_token's.
func TestConfigRefusesDuplicateAttestors(t *testing.T) {
	e := startEnv(t, envOpts{})
	tests := []struct {
		name string
		as   []attest.Attestor
	}{
		{"join_token again", []attest.Attestor{attest.JoinToken{}}},
		{"two of a name", []attest.Attestor{&testAttestor{}, &testAttestor{}}},
		{"nil", []attest.Attestor{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.srv.cfg
			cfg.Attestors = tc.as
			if err := cfg.Validate(); err == nil {
				t.Error("no error")
			}
		})
	}
	cfg := e.srv.cfg
	cfg.Attestors = []attest.Attestor{&testAttestor{}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("one test attestor: %v", err)
	}
}

package control

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/testpki"
)

// reportSerial sends one report claiming serial and waits until the
// control plane shows it.
func (e *testEnv) reportSerial(t *testing.T, c apiv1.ControlClient, serial string) {
	t.Helper()
	w := e.watchAs(t, c)
	if err := w.Send(&apiv1.WorkloadReport{SvidSerial: serial}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, wl := range e.srv.Status().GetWorkloads() {
			if wl.GetSvidSerial() == serial {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no workload reports serial %s", serial)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMeshCheckReturnsTheChainsWorkloadsHold: MeshCheck gives, under the
// serial a workload reports, the chain the control plane issued (a
// renewal, which no handshake shows) or verified in a handshake (a
// certificate issued before a restart); a serial it never saw has none.
// Only the admin may call it.
func TestMeshCheckReturnsTheChainsWorkloadsHold(t *testing.T) {
	e := startEnv(t, envOpts{})
	ctx := context.Background()
	svid, err := e.session("web").Holder().GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	first := identity.SerialHex(svid.Certificates[0])
	// Forget what was issued, as a restart does: only the handshake of
	// the Watch stream below can tell the chain now.
	e.srv.chains.mu.Lock()
	e.srv.chains.bySerial, e.srv.chains.notAfter = nil, nil
	e.srv.chains.mu.Unlock()
	c := e.conn(tlsCert(svid))
	e.reportSerial(t, c, first)

	renewed, err := c.Renew(ctx, &apiv1.RenewRequest{Csr: csr(t, p256(t), "spiffe://example.org/ns/default/sa/web")})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(renewed.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	second := identity.SerialHex(leaf)
	e.reportSerial(t, c, second)
	e.reportSerial(t, e.clientAs(t, "api"), "0badc0ffee")

	resp, err := e.admin.MeshCheck(ctx, &apiv1.MeshCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for serial, want := range map[string][]byte{first: svid.Certificates[0].Raw, second: renewed.Chain[0]} {
		got := resp.GetChains()[serial].GetCerts()
		if len(got) != 2 || string(got[0]) != string(want) {
			t.Errorf("chain under %s: %d certificates, leaf matches %v", serial, len(got), len(got) > 0 && string(got[0]) == string(want))
		}
	}
	if _, ok := resp.GetChains()["0badc0ffee"]; ok {
		t.Error("a chain under a serial the control plane never saw")
	}
	if len(resp.GetBundle()) == 0 || resp.GetServerTime() == 0 || resp.GetStatus() == nil {
		t.Errorf("bundle %d roots, server time %d, status %v", len(resp.GetBundle()), resp.GetServerTime(), resp.GetStatus())
	}

	if _, err := c.MeshCheck(ctx, &apiv1.MeshCheckRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a workload called MeshCheck: %v, want PermissionDenied", err)
	}
}

// TestChainLogIsBounded: past maxChains, expired chains go first, then
// the one that expires first; non-workload certificates are not kept.
func TestChainLogIsBounded(t *testing.T) {
	ca := testpki.NewCA(t, "example.org").Intermediate(t)
	now := time.Now()
	chain := func(id string, notAfter time.Time) []*x509.Certificate {
		s := ca.IssueSVID(t, spiffeid.RequireFromString(id), testpki.Leaf{NotBefore: now.Add(-2 * time.Hour), NotAfter: notAfter})
		return s.Certificates
	}
	var l chainLog
	l.remember(chain("spiffe://example.org/meshward/admin", now.Add(time.Hour)), now)
	if len(l.bySerial) != 0 {
		t.Fatal("kept the admin's chain")
	}
	expired := chain("spiffe://example.org/ns/default/sa/web", now.Add(-time.Minute))
	soonest := chain("spiffe://example.org/ns/default/sa/web", now.Add(time.Minute))
	l.remember(expired, now)
	l.remember(soonest, now)
	for i := 0; len(l.bySerial) < maxChains; i++ {
		filler := fmt.Sprintf("filler-%d", i)
		l.bySerial[filler], l.notAfter[filler] = nil, now.Add(time.Hour)
	}
	leaf := chain("spiffe://example.org/ns/default/sa/web", now.Add(time.Hour))
	l.remember(leaf, now)
	if _, ok := l.get(identity.SerialHex(expired[0])); ok {
		t.Error("an expired chain survived pruning")
	}
	if _, ok := l.get(identity.SerialHex(soonest[0])); !ok {
		t.Error("a live chain was dropped while an expired one made room")
	}
	next := chain("spiffe://example.org/ns/default/sa/web", now.Add(time.Hour))
	l.remember(next, now)
	if _, ok := l.get(identity.SerialHex(soonest[0])); ok {
		t.Error("the full log kept the chain that expires first")
	}
	for _, c := range [][]*x509.Certificate{leaf, next} {
		if _, ok := l.get(identity.SerialHex(c[0])); !ok {
			t.Error("a new chain was not kept")
		}
	}
	if len(l.bySerial) > maxChains {
		t.Errorf("%d chains kept, bound %d", len(l.bySerial), maxChains)
	}
}

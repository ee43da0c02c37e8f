package proxy

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/testpki"
)

// TestServiceAccountIdentity: a sidecar's own identity and the identity it
// requires of an upstream name the service account when one is given, the
// service otherwise.
func TestServiceAccountIdentity(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, td)
	src := mtlstest.NewSource(ca.SVID(t, "spiffe://"+td+"/ns/default/sa/frontend-sa"), ca.Bundle())
	cfg := Config{
		Service: "frontend", Namespace: "default", ServiceAccount: "frontend-sa",
		TrustDomain: spiffeid.RequireTrustDomainFromString(td), SVID: src, Bundle: src,
		Upstreams: []Upstream{
			{Service: "catalog", Listen: "127.0.0.1:0", ServiceAccount: "catalog-sa"},
			{Service: "orders", Namespace: "shop", Listen: "127.0.0.1:0"},
		},
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.self.String(), "spiffe://"+td+"/ns/default/sa/frontend-sa"; got != want {
		t.Errorf("self = %s; want %s", got, want)
	}
	ups := *p.upstreams.Load()
	for svc, want := range map[string]string{
		"catalog": "spiffe://" + td + "/ns/default/sa/catalog-sa",
		"orders":  "spiffe://" + td + "/ns/shop/sa/orders",
	} {
		u := ups[svc]
		if u == nil {
			t.Errorf("no upstream %s", svc)
		} else if got := u.id.String(); got != want {
			t.Errorf("upstream %s: identity %s; want %s", svc, got, want)
		}
	}

	cfg.ServiceAccount = "Frontend_SA"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Frontend_SA") {
		t.Errorf("invalid service account: err = %v", err)
	}
}

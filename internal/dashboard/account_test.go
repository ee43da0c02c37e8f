package dashboard

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
)

// TestServiceAccountIdentity: with a service whose identity names a
// serviceAccount, the dashboard shows and matches that identity for the
// service: its row in the matrix, its declared calls, and the policy
// check of an observed call to it.
func TestServiceAccountIdentity(t *testing.T) {
	mesh, err := config.ParseMesh("mesh.yaml", []byte(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: `+td+`
  services:
    - {name: orders, port: 8080, serviceAccount: orders-sa, upstreams: [{service: payments, listen: "127.0.0.1:9001"}]}
    - {name: payments, port: 8084, serviceAccount: payments-sa}
`))
	if err != nil {
		t.Fatal(err)
	}
	files := []*apiv1.PolicyFile{{Name: "p.yaml", Content: []byte(`apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: payments}
spec:
  target: payments
  rules:
    - name: orders-charge
      from: [{service: orders}]
      to: [{methods: [POST], paths: [/charge]}]
`)}}
	d, _ := newTest(t, &fakeSource{policy: &apiv1.Policy{Revision: 1, Version: "v1", Files: files}}, mesh)
	st := d.policyView(t.Context())
	if st.view.Error != "" {
		t.Fatal(st.view.Error)
	}
	if !st.allows(id("orders-sa"), id("payments-sa")) {
		t.Error("orders-sa -> payments-sa not allowed by policy")
	}
	if st.allows(id("orders"), id("payments-sa")) {
		t.Error("ns/default/sa/orders -> payments allowed; it is not orders' identity")
	}
	var sources, targets []string
	for _, s := range st.view.Sources {
		sources = append(sources, s.ID)
	}
	for _, tg := range st.view.Targets {
		targets = append(targets, tg.ID)
	}
	slices.Sort(sources)
	if diff := cmp.Diff([]string{id("orders-sa"), id("payments-sa")}, sources); diff != "" {
		t.Errorf("matrix sources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/orders", "default/payments"}, targets); diff != "" {
		t.Errorf("matrix targets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]string{{id("orders-sa"), id("payments-sa")}}, d.declaredCalls()); diff != "" {
		t.Errorf("declaredCalls (-want +got):\n%s", diff)
	}
}

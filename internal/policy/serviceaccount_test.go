package policy

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/config"
)

// saMesh has orders run as service account orders-sa.
const saMesh = `apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  services:
    - {name: orders, port: 8080, serviceAccount: orders-sa}
    - {name: payments, port: 8084}
`

const saPolicy = `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: payments}
spec:
  target: payments
  rules:
    - name: orders-charge
      from: [{service: orders}]
      to: [{methods: [POST], paths: [/charge]}]
`

func saFiles() []File { return []File{{Name: "payments.yaml", Data: []byte(saPolicy)}} }

// TestServiceAccountSource: `from: [{service: orders}]` names the orders
// service, so with the mesh known it allows orders' identity (its service
// account) and not ns/default/sa/orders; without the mesh it is
// ns/default/sa/orders as before.
func TestServiceAccountSource(t *testing.T) {
	t.Parallel()
	mesh, err := config.ParseMesh("mesh.yaml", []byte(saMesh))
	if err != nil {
		t.Fatal(err)
	}
	const (
		account = "spiffe://shop.local/ns/default/sa/orders-sa"
		name    = "spiffe://shop.local/ns/default/sa/orders"
	)
	tests := []struct {
		name  string
		opts  Options
		allow string // allowed to POST /charge
		deny  string
	}{
		{name: "mesh known", opts: Options{Mesh: mesh, Now: fixedClock}, allow: account, deny: name},
		{name: "mesh unknown", opts: Options{TrustDomain: "shop.local", Now: fixedClock}, allow: name, deny: account},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := Compile(saFiles(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if d := e.Decide(httpReq(t, tc.allow, "payments", 8084, "POST", "/charge")); !d.Allow || d.Rule != "orders-charge" {
				t.Errorf("%s: %+v; want allowed by orders-charge", tc.allow, d)
			}
			if d := e.Decide(httpReq(t, tc.deny, "payments", 8084, "POST", "/charge")); d.Allow || d.Rule != RuleDefaultDeny {
				t.Errorf("%s: %+v; want default deny", tc.deny, d)
			}
			var sources []string
			for _, c := range Diff(nil, e, tc.opts.Mesh) {
				if c.Grant.Rule == "payments/orders-charge" && !slices.Contains(sources, c.Grant.Source) {
					sources = append(sources, c.Grant.Source)
				}
			}
			if diff := cmp.Diff([]string{tc.allow}, sources); diff != "" {
				t.Errorf("Diff: sources of orders-charge (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServiceAccountShadowed: with the mesh known, {service: orders} and
// orders' identity are the same source, so lint sees the second rule as
// shadowed.
func TestServiceAccountShadowed(t *testing.T) {
	t.Parallel()
	mesh, err := config.ParseMesh("mesh.yaml", []byte(saMesh))
	if err != nil {
		t.Fatal(err)
	}
	files := []File{{Name: "payments.yaml", Data: []byte(saPolicy + `    - name: again
      from: [{identity: "spiffe://shop.local/ns/default/sa/orders-sa"}]
      to: [{methods: [POST], paths: [/charge]}]
`)}}
	for _, tc := range []struct {
		name string
		opts Options
		want bool
	}{
		{"mesh known", Options{Mesh: mesh, Now: fixedClock}, true},
		{"mesh unknown", Options{TrustDomain: "shop.local", Now: fixedClock}, false},
	} {
		set, err := Parse(files, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, w := range Lint(set) {
			got = got || w.Check == CheckShadowed
		}
		if got != tc.want {
			t.Errorf("%s: shadowed-rule warning %v; want %v", tc.name, got, tc.want)
		}
	}
}

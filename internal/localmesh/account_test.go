package localmesh

import (
	"context"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
)

// tokenRecorder is a control plane that records the join tokens asked of
// it; every other call panics (nil embedded client).
type tokenRecorder struct {
	apiv1.ControlClient
	got []*apiv1.CreateTokenRequest
}

func (r *tokenRecorder) CreateToken(_ context.Context, in *apiv1.CreateTokenRequest, _ ...grpc.CallOption) (*apiv1.CreateTokenResponse, error) {
	r.got = append(r.got, in)
	return &apiv1.CreateTokenResponse{Token: "mwt1.test.pin"}, nil
}

// TestSidecarTokenServiceAccount: the join token `up` mints for a
// service's sidecar is for the service's identity, which names its
// serviceAccount when it sets one.
func TestSidecarTokenServiceAccount(t *testing.T) {
	mesh, err := config.ParseMesh("mesh.yaml", []byte(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  dataDir: `+t.TempDir()+`
  services:
    - {name: orders, namespace: shop, port: 18080, serviceAccount: orders-sa}
    - {name: payments, port: 18084}
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &tokenRecorder{}
	s, err := New(Config{Mesh: mesh, Executable: "meshward", Sidecar: []string{"meshward-proxy"}, Admin: rec, Out: NewOutput(io.Discard, false)})
	if err != nil {
		t.Fatal(err)
	}
	for i, svc := range s.services {
		if _, err := s.sidecarCmd(t.Context(), i, svc, mesh.Services[i]); err != nil {
			t.Fatal(err)
		}
	}
	type req struct{ Service, Namespace string }
	var got []req
	for _, r := range rec.got {
		got = append(got, req{r.GetService(), r.GetNamespace()})
	}
	want := []req{{"orders-sa", "shop"}, {"payments", "default"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateToken requests (-want +got):\n%s", diff)
	}
}

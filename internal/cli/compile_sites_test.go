package cli

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/dashboard"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
	"meshward.dev/meshward/internal/sidecar"
)

// TestCompileSitesAgree: the four places that turn a policy version into
// an engine (the CLI, the control plane's checker, the sidecar, the
// dashboard) compile the same files to the same version, each with what it
// knows (the mesh file, the trust domain, the registry, the clock).
func TestCompileSitesAgree(t *testing.T) {
	t.Parallel()
	mesh, err := config.LoadMesh("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := policy.ReadDir(mesh.PoliciesDir())
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString(mesh.TrustDomain)
	var known []string
	for _, s := range mesh.Services {
		known = append(known, s.Namespace+"/"+s.Name)
	}
	pushed := &apiv1.Policy{Version: "v1", Revision: 1, Files: policywire.Proto(files)}
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

	want, err := compileLocal(files, mesh)
	if err != nil {
		t.Fatalf("cli: %v", err)
	}
	if want.Version() == "" {
		t.Fatal("cli: empty version")
	}
	sites := []struct {
		name    string
		version func() (string, error)
	}{
		{"cli without a mesh file", func() (string, error) {
			e, err := compileLocal(files, nil)
			return e.Version(), err
		}},
		{"control plane, registry checked", func() (string, error) { return policyChecker(mesh, td)(files, known) }},
		{"control plane, registry unchecked", func() (string, error) { return policyChecker(mesh, td)(files, nil) }},
		{"control plane without a mesh file", func() (string, error) { return policyChecker(nil, td)(files, nil) }},
		{"sidecar", func() (string, error) {
			e, err := sidecar.CompilePolicy(pushed, td.Name())
			return e.Version(), err
		}},
		{"dashboard", func() (string, error) {
			e, err := dashboard.CompilePolicy(pushed, mesh, td.Name(), now)
			return e.Version(), err
		}},
		{"dashboard without a mesh file", func() (string, error) {
			e, err := dashboard.CompilePolicy(pushed, nil, td.Name(), now)
			return e.Version(), err
		}},
	}
	for _, s := range sites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.version()
			if err != nil {
				t.Fatal(err)
			}
			if got != want.Version() {
				t.Errorf("version %s; the CLI compiled %s", got, want.Version())
			}
		})
	}
}

package svid

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoControlPlaneInImportGraph keeps the line between the two jobs: the
// holder verifies and publishes, and links nothing that talks to the
// control plane (gRPC, the API, the session).
func TestNoControlPlaneInImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not available")
	}
	out, err := exec.Command(goBin, "list", "-deps", "meshward.dev/meshward/internal/identity/svid").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "google.golang.org/grpc") ||
			strings.HasPrefix(pkg, "meshward.dev/meshward/internal/api/") ||
			pkg == "meshward.dev/meshward/internal/identity/session" {
			t.Errorf("the SVID holder links %s", pkg)
		}
	}
}

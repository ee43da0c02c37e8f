package proxy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoKubernetesInImportGraph keeps the sidecar lean: nothing under
// internal/proxy or internal/mtls may link Kubernetes client libraries.
func TestNoKubernetesInImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not available")
	}
	out, err := exec.Command(goBin, "list", "-deps", "meshward.dev/meshward/internal/proxy", "meshward.dev/meshward/internal/mtls").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime") {
			t.Errorf("the sidecar links %s", pkg)
		}
	}
}

package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"meshward.dev/meshward/internal/policy"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCLI(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var b buildInfo
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d := policy.DefaultMeshConfig()
	if b.Version == "" || !strings.HasPrefix(b.GoVersion, "go") || b.Defaults.MTLS != d.MTLS || b.Defaults.DefaultAction != "deny" ||
		b.Defaults.WorkloadTTL != d.Certificates.WorkloadTTL.String() {
		t.Errorf("version -o json: %+v", b)
	}
	yout, _, code := runCLI(t, "version", "-o", "yaml")
	var y buildInfo
	if err := yaml.Unmarshal([]byte(yout), &y); code != 0 || err != nil || y != b {
		t.Errorf("version -o yaml: exit %d, %v: %+v, want the JSON's %+v", code, err, y, b)
	}
	text, _, _ := runCLI(t, "version")
	if !strings.HasPrefix(text, "meshward ") || !strings.Contains(text, "default action") || !strings.Contains(text, "deny") {
		t.Errorf("version text:\n%s", text)
	}
	flag, _, code := runCLI(t, "--version")
	if code != 0 || strings.TrimSpace(flag) != b.short() {
		t.Errorf("--version: exit %d, %q, want %q", code, flag, b.short())
	}
}

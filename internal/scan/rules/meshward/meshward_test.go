package meshward

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

// meshConfig is a MeshConfig with spec as given.
func meshConfig(spec string) map[string]string {
	return map[string]string{"mesh.yaml": "apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n" + spec}
}

// accessPolicy is an AccessPolicy payments/default with spec as given.
func accessPolicy(spec string) map[string]string {
	return map[string]string{"pay.yaml": "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: payments, namespace: default}\nspec:\n" + spec}
}

const (
	secureMesh   = "  mtls: strict\n  defaultAction: deny\n  pathNormalization: strict\n  certificates: {workloadTTL: 1h}\n"
	frontendOnly = "  target: payments\n  rules:\n    - name: frontend\n      from: [{service: frontend}]\n"
)

const shopMesh = `apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  services:
    - name: frontend
      port: 8081
    - name: payments
      port: 8082
`

func TestRules(t *testing.T) {
	t.Parallel()
	set := func(old, new string) map[string]string {
		return meshConfig(strings.Replace(secureMesh, old, new, 1))
	}
	withMesh := func(files map[string]string) map[string]string {
		files["mesh.yaml"] = shopMesh
		return files
	}
	ruletest.Run(t, Rules(), []ruletest.Case{
		ruletest.Fires("permissive mTLS", "MW-MESHWARD-001", set("mtls: strict", "mtls: permissive")),
		ruletest.Clean("strict mTLS", "MW-MESHWARD-001", meshConfig(secureMesh)),
		ruletest.Fires("mTLS disabled", "MW-MESHWARD-002", set("mtls: strict", "mtls: disabled")),
		ruletest.Clean("mTLS permissive is not disabled", "MW-MESHWARD-002", set("mtls: strict", "mtls: permissive")),
		ruletest.Fires("default allow", "MW-MESHWARD-003", set("defaultAction: deny", "defaultAction: allow")),
		ruletest.Clean("default deny", "MW-MESHWARD-003", meshConfig(secureMesh)),
		ruletest.Fires("path normalization none", "MW-MESHWARD-004", set("pathNormalization: strict", "pathNormalization: none")),
		ruletest.Clean("path normalization unset (strict by default)", "MW-MESHWARD-004", set("  pathNormalization: strict\n", "")),
		ruletest.Fires("policy in audit mode", "MW-MESHWARD-005", accessPolicy("  mode: audit\n"+frontendOnly)),
		ruletest.Clean("policy enforced", "MW-MESHWARD-005", accessPolicy("  mode: enforce\n"+frontendOnly)),
		ruletest.Fires("rule without from", "MW-MESHWARD-006", accessPolicy("  target: payments\n  rules:\n    - name: anyone-reads\n      to:\n        - methods: [GET]\n")),
		ruletest.Clean("rule naming its callers", "MW-MESHWARD-006", accessPolicy(frontendOnly)),
		ruletest.Fires("90-day workload certificates", "MW-MESHWARD-007", set("workloadTTL: 1h", "workloadTTL: 2160h")),
		ruletest.Clean("30-day workload certificates", "MW-MESHWARD-007", set("workloadTTL: 1h", "workloadTTL: 720h")),
		ruletest.Fires("policy for a service the mesh lacks", "MW-MESHWARD-008", withMesh(accessPolicy(strings.Replace(frontendOnly, "target: payments", "target: paymnets", 1)))),
		ruletest.Clean("policy for a service of the mesh", "MW-MESHWARD-008", withMesh(accessPolicy(frontendOnly))),
	})
}

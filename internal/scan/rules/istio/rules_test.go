package istio

import (
	"slices"
	"testing"

	"meshward.dev/meshward/internal/scan"
)

func one(name, content string) map[string]string { return map[string]string{name: content} }

// only keeps the rules with these IDs.
func only(rules []scan.Rule, ids ...string) []scan.Rule {
	var out []scan.Rule
	for _, r := range rules {
		if slices.Contains(ids, r.ID) {
			out = append(out, r)
		}
	}
	return out
}

// The rule groups of the test files; together they are every rule.
var (
	mtlsIDs         = []string{"MW-ISTIO-001", "MW-ISTIO-002", "MW-ISTIO-003", "MW-ISTIO-004", "MW-ISTIO-019"}
	authzIDs        = []string{"MW-ISTIO-005", "MW-ISTIO-006", "MW-ISTIO-007", "MW-ISTIO-008", "MW-ISTIO-009", "MW-ISTIO-017", "MW-ISTIO-018", "MW-ISTIO-021"}
	meshIDs         = []string{"MW-ISTIO-010", "MW-ISTIO-011", "MW-ISTIO-012", "MW-ISTIO-013", "MW-ISTIO-014", "MW-ISTIO-015", "MW-ISTIO-016", "MW-ISTIO-022"}
	requestAuthnIDs = []string{"MW-ISTIO-020"}
)

func TestGroupsCoverEveryRule(t *testing.T) {
	t.Parallel()
	var ids []string
	for _, g := range [][]string{mtlsIDs, authzIDs, meshIDs, requestAuthnIDs} {
		ids = append(ids, g...)
	}
	for _, r := range Rules() {
		if !slices.Contains(ids, r.ID) {
			t.Errorf("rule %s is in no test group", r.ID)
		}
	}
}

// Fragments the cases share: a mesh-wide STRICT PeerAuthentication, the
// injected namespace shop, and the web Deployment in it.
const (
	meshStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`
	shopInjected = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio-injection: "enabled"
`
	webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: "web"
  template:
    metadata:
      labels:
        app: "web"
    spec:
      containers:
      - name: app
        image: example/web:1
`
)

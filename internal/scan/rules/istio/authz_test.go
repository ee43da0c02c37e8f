package istio

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

const authzMissing = meshStrict + `---
` + shopInjected + `---
` + webDeployment

const allowNothing = meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
`

const allowAllEmptyRule = meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-open
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  action: ALLOW
  rules:
  - {}
`

const allowPaths = meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: get-public
  namespace: shop
spec:
  selector:
    matchLabels:
      app: api
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/web"]
    to:
    - operation:
        paths: ["/public/*"]
`

const ipblocksPlaintext = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: office-only
  namespace: shop
spec:
  selector:
    matchLabels:
      app: admin
  rules:
  - from:
    - source:
        ipBlocks: ["10.8.0.0/16"]
`

const ipblocksStrict = meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: office-only
  namespace: shop
spec:
  selector:
    matchLabels:
      app: admin
  rules:
  - from:
    - source:
        ipBlocks: ["10.8.0.0/16"]
`

const pathDenyBase = meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: block-admin
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
`

const pathDenyMergeSlashes = meshStrict + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
    pathNormalization:
      normalization: MERGE_SLASHES
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: block-admin
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
`

const dryRunOnly = meshStrict + `---
` + shopInjected + `---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-allowlist
  namespace: shop
  annotations:
    istio.io/dry-run: "true"
spec:
  selector:
    matchLabels:
      app: web
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/default"]
`

const dryRunNextToEnforced = meshStrict + `---
` + shopInjected + `---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-allowlist
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/default"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-tighter
  namespace: shop
  annotations:
    istio.io/dry-run: "true"
spec:
  selector:
    matchLabels:
      app: web
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/default"]
    to:
    - operation:
        methods: ["GET"]
`

const unknownNamespaceSource = meshStrict + `---
` + shopInjected + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-callers
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  rules:
  - from:
    - source:
        namespaces: ["frontend"]
`

const builtinNamespaceSource = meshStrict + `---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio-injection: enabled
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example/web:1
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-callers
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  action: ALLOW
  rules:
  - from:
    - source:
        namespaces: ["default", "kube-system"]
    to:
    - operation:
        methods: ["GET"]
`

const ambientL7WithoutWaypoint = meshStrict + `---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: "ambient"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-get
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/default"]
    to:
    - operation:
        methods: ["GET"]
`

// TestAuthzRules: each rule fires on one small cluster and not on its fixed or
// near-miss twin (cases from the corpus, inline).
func TestAuthzRules(t *testing.T) {
	t.Parallel()
	ruletest.Run(t, only(Rules(), authzIDs...), []ruletest.Case{
		ruletest.Fires("selector on gateway-name label", "MW-ISTIO-021", one("ap.yaml", gatewaySelectorPolicy("spec:\n  selector:\n    matchLabels:\n      gateway.networking.k8s.io/gateway-name: public\n"))),
		ruletest.Fires("selector matching gateway pods", "MW-ISTIO-021", one("ap.yaml", gatewayPods+"---\n"+gatewaySelectorPolicy("spec:\n  selector:\n    matchLabels:\n      app: public-gw\n"))),
		ruletest.Clean("targetRefs to the gateway", "MW-ISTIO-021", one("ap.yaml", gatewayPods+"---\n"+gatewaySelectorPolicy("spec:\n  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: public\n"))),
		ruletest.Fires("authz missing", "MW-ISTIO-005", one("m.yaml", authzMissing)),
		ruletest.Clean("allow nothing", "MW-ISTIO-005", one("ap.yaml", allowNothing)),
		ruletest.Fires("allow all empty rule", "MW-ISTIO-006", one("ap.yaml", allowAllEmptyRule)),
		ruletest.Clean("allow paths", "MW-ISTIO-006", one("ap.yaml", allowPaths)),
		ruletest.Fires("ipblocks plaintext", "MW-ISTIO-007", one("ap.yaml", ipblocksPlaintext)),
		ruletest.Clean("ipblocks strict", "MW-ISTIO-007", one("ap.yaml", ipblocksStrict)),
		ruletest.Fires("path deny base", "MW-ISTIO-008", one("ap.yaml", pathDenyBase)),
		ruletest.Clean("path deny merge slashes", "MW-ISTIO-008", one("m.yaml", pathDenyMergeSlashes)),
		ruletest.Fires("dry run only", "MW-ISTIO-009", one("m.yaml", dryRunOnly)),
		ruletest.Clean("dry run next to enforced", "MW-ISTIO-009", one("m.yaml", dryRunNextToEnforced)),
		ruletest.Fires("unknown namespace source", "MW-ISTIO-017", one("m.yaml", unknownNamespaceSource)),
		ruletest.Clean("builtin namespace source", "MW-ISTIO-017", one("policy.yaml", builtinNamespaceSource)),
		ruletest.Fires("ambient l7 without waypoint", "MW-ISTIO-018", one("m.yaml", ambientL7WithoutWaypoint)),
		ruletest.Clean("ambient l7 without waypoint, fixed", "MW-ISTIO-018", one("m.yaml", strings.Replace(ambientL7WithoutWaypoint, "    to:\n    - operation:\n        methods: [\"GET\"]\n", "", 1))),
	})
}

// gatewayPods are the pods Istio deploys for Gateway API gateway "public".
const gatewayPods = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: public-istio
  namespace: edge
spec:
  selector:
    matchLabels:
      gateway.networking.k8s.io/gateway-name: public
  template:
    metadata:
      labels:
        app: public-gw
        gateway.networking.k8s.io/gateway-name: public
    spec:
      containers:
      - name: istio-proxy
        image: istio/proxyv2:1.24.0
`

// gatewaySelectorPolicy is an ALLOW policy for the edge namespace's
// gateway with the given spec head (selector or targetRefs).
func gatewaySelectorPolicy(head string) string {
	return meshStrict + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: public-allow-office
  namespace: edge
` + head + `  action: ALLOW
  rules:
  - from:
    - source:
        ipBlocks: ["203.0.113.0/24"]
`
}

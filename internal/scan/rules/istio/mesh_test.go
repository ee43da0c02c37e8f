package istio

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

const egressIstiooperator = `apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: control-plane
  namespace: istio-system
spec:
  meshConfig:
    outboundTrafficPolicy:
      mode: ALLOW_ANY
`

const registryOnly = meshStrict + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
`

const sidecarReopensEgress = meshStrict + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: scraper
  namespace: tools
spec:
  workloadSelector:
    labels: {app: scraper}
  outboundTrafficPolicy:
    mode: ALLOW_ANY
`

const gatewayApiPassthrough = meshStrict + `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: ingress
spec:
  gatewayClassName: istio
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls:
      mode: Passthrough
`

const passthroughWithAuthz = meshStrict + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: public
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts: ["*.example.com"]
    tls:
      mode: PASSTHROUGH
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ingress-allowlist
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  rules:
  - from:
    - source:
        remoteIpBlocks: ["203.0.113.0/24"]
`

const multiclusterDefaultTrustDomain = meshStrict + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
---
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-west
  namespace: istio-system
  labels:
    istio/multiCluster: "true"
stringData:
  west: "kubeconfig"
`

const multiclusterCustomTrustDomain = meshStrict + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    trustDomain: prod.example.com
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
---
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-west
  namespace: istio-system
  labels:
    istio/multiCluster: "true"
stringData:
  west: "kubeconfig"
`

const injectionOptOutLabelStatefulset = meshStrict + `---
apiVersion: v1
kind: Namespace
metadata:
  name: data
  labels:
    istio.io/rev: "stable"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: data
spec: {}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: data
spec:
  selector:
    matchLabels:
      app: "db"
      sidecar.istio.io/inject: "false"
  template:
    metadata:
      labels:
        app: "db"
        sidecar.istio.io/inject: "false"
    spec:
      containers:
      - name: app
        image: example/db:1
`

const optOutOutsideMesh = `apiVersion: v1
kind: Namespace
metadata:
  name: tools
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: runner
  namespace: tools
spec:
  selector:
    matchLabels:
      app: "runner"
  template:
    metadata:
      labels:
        app: "runner"
      annotations:
        sidecar.istio.io/inject: "false"
    spec:
      containers:
      - name: app
        image: example/runner:1
`

const excludeInboundPorts = meshStrict + `---
` + shopInjected + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
---
apiVersion: apps/v1
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
      annotations:
        traffic.sidecar.istio.io/excludeInboundPorts: "9090"
    spec:
      containers:
      - name: app
        image: example/web:1
`

const appUid1337 = meshStrict + `---
` + shopInjected + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
---
` + webDeployment + `        securityContext:
          runAsUser: 1337
`

// TestMeshRules: each rule fires on one small cluster and not on its fixed or
// near-miss twin (cases from the corpus, inline).
func TestMeshRules(t *testing.T) {
	t.Parallel()
	ruletest.Run(t, only(Rules(), meshIDs...), []ruletest.Case{
		ruletest.Fires("egress istiooperator", "MW-ISTIO-010", one("iop.yaml", egressIstiooperator)),
		ruletest.Clean("registry only", "MW-ISTIO-010", one("m.yaml", registryOnly)),
		ruletest.Fires("sidecar reopens egress", "MW-ISTIO-011", one("m.yaml", sidecarReopensEgress)),
		ruletest.Clean("registry only", "MW-ISTIO-011", one("m.yaml", registryOnly)),
		ruletest.Fires("gateway api passthrough", "MW-ISTIO-012", one("gw.yaml", gatewayApiPassthrough)),
		ruletest.Clean("passthrough with authz", "MW-ISTIO-012", one("gw.yaml", passthroughWithAuthz)),
		ruletest.Fires("credential without a key", "MW-ISTIO-022", one("gw.yaml", gatewayWithCredential("SIMPLE", "istio-system", "  tls.crt: Y2VydA==\n"))),
		ruletest.Fires("credential in the app namespace", "MW-ISTIO-022", one("gw.yaml", gatewayWithCredential("SIMPLE", "shop", "  tls.crt: Y2VydA==\n  tls.key: a2V5\n"))),
		ruletest.Fires("MUTUAL credential without a CA", "MW-ISTIO-022", one("gw.yaml", gatewayWithCredential("MUTUAL", "istio-system", "  tls.crt: Y2VydA==\n  tls.key: a2V5\n"))),
		ruletest.Clean("usable credential", "MW-ISTIO-022", one("gw.yaml", gatewayWithCredential("SIMPLE", "istio-system", "  tls.crt: Y2VydA==\n  tls.key: a2V5\n"))),
		ruletest.Clean("MUTUAL credential with a -cacert Secret", "MW-ISTIO-022", one("gw.yaml", gatewayWithCredential("MUTUAL", "istio-system", "  tls.crt: Y2VydA==\n  tls.key: a2V5\n")+"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-cert-cacert\n  namespace: istio-system\ndata:\n  ca.crt: Y2E=\n")),
		ruletest.Clean("credential not in the input", "MW-ISTIO-022", one("gw.yaml", strings.SplitN(gatewayWithCredential("SIMPLE", "istio-system", ""), "---\napiVersion: v1\nkind: Secret", 2)[0])),
		ruletest.Fires("gateway api passthrough, selector policy ignored", "MW-ISTIO-012", one("gw.yaml", gatewayApiPassthrough+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: edge-allowlist
  namespace: ingress
spec:
  selector:
    matchLabels:
      gateway.networking.k8s.io/gateway-name: edge
  rules:
  - from:
    - source:
        remoteIpBlocks: ["203.0.113.0/24"]
`)),
		ruletest.Fires("multicluster default trust domain", "MW-ISTIO-013", one("m.yaml", multiclusterDefaultTrustDomain)),
		ruletest.Clean("multicluster custom trust domain", "MW-ISTIO-013", one("m.yaml", multiclusterCustomTrustDomain)),
		ruletest.Fires("injection opt out label statefulset", "MW-ISTIO-014", one("m.yaml", injectionOptOutLabelStatefulset)),
		ruletest.Clean("opt out outside mesh", "MW-ISTIO-014", one("m.yaml", optOutOutsideMesh)),
		ruletest.Fires("exclude inbound ports", "MW-ISTIO-015", one("m.yaml", excludeInboundPorts)),
		ruletest.Clean("exclude inbound ports, fixed", "MW-ISTIO-015", one("m.yaml", strings.Replace(excludeInboundPorts, `traffic.sidecar.istio.io/excludeInboundPorts: "9090"`, `sidecar.istio.io/proxyCPU: "100m"`, 1))),
		ruletest.Fires("app uid 1337", "MW-ISTIO-016", one("m.yaml", appUid1337)),
		ruletest.Clean("app uid 1337, fixed", "MW-ISTIO-016", one("m.yaml", strings.Replace(appUid1337, "runAsUser: 1337", "runAsUser: 1000", 1))),
	})
}

// gatewayWithCredential is the ingress gateway's pods in istio-system, a
// Gateway there whose server uses credential shop-cert in mode, and Secret
// shop-cert in secretNS with the given data lines.
func gatewayWithCredential(mode, secretNS, data string) string {
	return meshStrict + `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-ingressgateway
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  template:
    metadata:
      labels:
        istio: ingressgateway
    spec:
      containers:
      - name: istio-proxy
        image: istio/proxyv2:1.24.0
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: shop
  namespace: shop
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts: ["shop.example.com"]
    tls:
      mode: ` + mode + `
      credentialName: shop-cert
---
apiVersion: v1
kind: Secret
metadata:
  name: shop-cert
  namespace: ` + secretNS + `
type: Opaque
data:
` + data
}

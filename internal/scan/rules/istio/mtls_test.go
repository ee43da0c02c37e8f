package istio

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

const meshPermissive = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
`

const strictEverything = meshStrict + `---
` + shopInjected + `---
` + webDeployment + `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  selector:
    matchLabels:
      app: "api"
  template:
    metadata:
      labels:
        app: "api"
    spec:
      containers:
      - name: app
        image: example/api:1
---
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
        principals: ["cluster.local/ns/shop/sa/default"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
`

const jsonMeshDisable = `{
  "apiVersion": "security.istio.io/v1",
  "kind": "PeerAuthentication",
  "metadata": {
    "name": "default",
    "namespace": "istio-system"
  },
  "spec": {
    "mtls": {
      "mode": "DISABLE"
    }
  }
}
`

const revisionLabelNoPa = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/rev: "1-22"
---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
`

const unsetInheritsStrict = meshStrict + `---
` + shopInjected + `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: unset
  namespace: shop
spec:
  mtls:
    mode: UNSET
---
` + webDeployment + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
`

const drSimpleInMeshShortHost = `apiVersion: v1
kind: Namespace
metadata:
  name: prod
  labels:
    istio-injection: enabled
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ratings
  namespace: prod
spec:
  host: ratings
  trafficPolicy:
    tls:
      mode: SIMPLE
      credentialName: ratings-ca
`

const drIstioMutual = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v1
    labels: {version: v1}
`

const drExternalSkipVerify = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: partner
  namespace: shop
spec:
  host: partner.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      insecureSkipVerify: true
`

const drExternalSimple = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: stripe
  namespace: shop
spec:
  host: api.stripe.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: api.stripe.com
`

// TestMTLSRules: each rule fires on one small cluster and not on its fixed or
// near-miss twin (cases from the corpus, inline).
func TestMTLSRules(t *testing.T) {
	t.Parallel()
	ruletest.Run(t, only(Rules(), mtlsIDs...), []ruletest.Case{
		ruletest.Fires("mesh permissive", "MW-ISTIO-001", one("pa.yaml", meshPermissive)),
		ruletest.Clean("strict everything", "MW-ISTIO-001", one("m.yaml", strictEverything)),
		ruletest.Fires("json mesh disable", "MW-ISTIO-002", one("pa.json", jsonMeshDisable)),
		ruletest.Clean("strict everything", "MW-ISTIO-002", one("m.yaml", strictEverything)),
		ruletest.Fires("revision label no pa", "MW-ISTIO-003", one("m.yaml", revisionLabelNoPa)),
		ruletest.Clean("unset inherits strict", "MW-ISTIO-003", one("m.yaml", unsetInheritsStrict)),
		ruletest.Fires("dr simple in mesh short host", "MW-ISTIO-004", one("dr.yaml", drSimpleInMeshShortHost)),
		ruletest.Clean("dr istio mutual", "MW-ISTIO-004", one("dr.yaml", drIstioMutual)),
		ruletest.Fires("dr external skip verify", "MW-ISTIO-019", one("dr.yaml", drExternalSkipVerify)),
		ruletest.Clean("dr external simple", "MW-ISTIO-019", one("dr.yaml", drExternalSimple)),
	})
}

// A host in a namespace the files do not declare may run without sidecars:
// plaintext to it is low and says it is unverified.
func TestDRToUndeclaredNamespaceIsLow(t *testing.T) {
	t.Parallel()
	objs, err := manifest.Decode("dr.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: legacy-db
  namespace: shop
spec:
  host: db.legacy.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
`))
	if err != nil {
		t.Fatal(err)
	}
	got := checkDestinationRules(scan.NewModel(objs, ruletest.Now))
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1: %+v", len(got), got)
	}
	if got[0].Severity != scan.SeverityLow || !strings.Contains(got[0].Message, "Unverified: namespace legacy is not in the input") {
		t.Errorf("got %s %q, want low and unverified", got[0].Severity, got[0].Message)
	}
}

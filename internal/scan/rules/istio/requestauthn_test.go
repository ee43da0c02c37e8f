package istio

import (
	"testing"

	"meshward.dev/meshward/internal/scan/rules/ruletest"
)

const jwtNotRequired = meshStrict + `---
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
  name: api
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: example/api:1
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: api-jwt
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  jwtRules:
  - issuer: https://auth.example.com
    jwksUri: https://auth.example.com/.well-known/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: api-callers
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/web"]
`

// jwtRequired is the same cluster fixed: a DENY for requests without a
// principal makes the token required.
const jwtRequired = jwtNotRequired + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
`

// TestRequestAuthnRules: each rule fires on one small cluster and not on its fixed or
// near-miss twin (cases from the corpus, inline).
func TestRequestAuthnRules(t *testing.T) {
	t.Parallel()
	ruletest.Run(t, only(Rules(), requestAuthnIDs...), []ruletest.Case{
		ruletest.Fires("jwt not required", "MW-ISTIO-020", one("m.yaml", jwtNotRequired)),
		ruletest.Clean("jwt required", "MW-ISTIO-020", one("m.yaml", jwtRequired)),
	})
}

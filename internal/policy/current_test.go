package policy

import (
	"strings"
	"testing"
)

// TestCurrentRejectsBadPush proves that a malformed policy push leaves the
// old policy enforced.
func TestCurrentRejectsBadPush(t *testing.T) {
	t.Parallel()
	var c Current
	charge := httpReq(t, "spiffe://meshward.local/ns/default/sa/web", "api", 8080, "POST", "/charge", "x-tenant", "acme")
	if c.Decide(charge).Allow {
		t.Fatal("empty Current allowed a request")
	}
	good := []File{{Name: "p.yaml", Data: []byte(strings.ReplaceAll(matchPolicy, "%MODE%", "enforce"))}}
	e1, err := c.Update(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Decide(charge); !d.Allow || d.Rule != "charge" {
		t.Fatalf("after good push: %+v", d)
	}
	// A push that would allow everything, but has a typo in one field.
	bad := []File{{Name: "p.yaml", Data: []byte(`apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api}
spec:
  target: api
  rules:
    - name: everyone
      from: [{namespace: "*"}]
      to: [{methods: [PSOT]}]
`)}}
	if _, err := c.Update(bad, Options{}); err == nil || !strings.Contains(err.Error(), `p.yaml:9: spec.rules[0].to[0].methods[0]: "PSOT" is not an HTTP method`) {
		t.Fatalf("bad push: err = %v", err)
	}
	if c.Load() != e1 {
		t.Fatal("a bad push replaced the engine")
	}
	other := httpReq(t, "spiffe://meshward.local/ns/x/sa/y", "api", 8080, "POST", "/other")
	if c.Decide(other).Allow {
		t.Fatal("old policy not enforced after a bad push")
	}
	if d := c.Decide(charge); !d.Allow || d.Rule != "charge" {
		t.Fatalf("old policy lost after a bad push: %+v", d)
	}
}

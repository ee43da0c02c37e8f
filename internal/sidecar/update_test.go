package sidecar

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/testpki"
)

// TestApplyUpdateRejectsBadPolicy: a pushed policy set that does not
// compile is rejected whole; the previous version stays in force and the
// error is kept for the next report.
func TestApplyUpdateRejectsBadPolicy(t *testing.T) {
	_, p, st := startAdmin(t, testpki.Leaf{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	push := func(version, body string) {
		applyUpdate(p, td, st, &apiv1.MeshUpdate{Policy: &apiv1.Policy{
			Version: version, Files: []*apiv1.PolicyFile{{Name: "p.yaml", Content: []byte(body)}},
		}}, log)
	}
	const good = `apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: catalog}
spec:
  target: catalog
  rules:
    - name: web
      from: [{service: web}]
`
	push("v1", good)
	if st.policyVersion != "v1" || st.policyError != "" {
		t.Fatalf("after a good push: version %q, error %q; want v1 and none", st.policyVersion, st.policyError)
	}
	// A push that would allow everyone, with a typo in one field.
	push("v2", strings.Replace(good, "[{service: web}]", `[{namespace: "*"}]`+"\n      to: [{methods: [PSOT]}]", 1))
	if st.policyVersion != "v1" {
		t.Errorf("after a bad push the version in force is %q; want v1", st.policyVersion)
	}
	if !strings.Contains(st.policyError, `"PSOT" is not an HTTP method`) {
		t.Errorf("policy error %q; want it to name PSOT", st.policyError)
	}
	push("v3", good)
	if st.policyVersion != "v3" || st.policyError != "" {
		t.Errorf("after the fix: version %q, error %q; want v3 and none", st.policyVersion, st.policyError)
	}
}

package proxy

import (
	"net/http"
	"testing"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

// TestTelemetrySwitches: with the defaults an allowed request leaves no
// access-log line but a deny always does; --access-log brings the allowed
// lines back; metrics off drops the per-request series but never the deny
// counter.
func TestTelemetrySwitches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tel        policy.Telemetry
		allowLine  bool
		perRequest bool
	}{
		{"defaults", policy.Telemetry{}, false, true},
		{"access log on", policy.Telemetry{AccessLog: new(true)}, true, true},
		{"metrics off", policy.Telemetry{Metrics: new(false)}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			log, err := observe.NewLogger(&logs, "json", "info")
			if err != nil {
				t.Fatal(err)
			}
			app := newEchoApp(t, false, nil)
			m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, logger: log, telemetry: tc.tel})
			m.cat.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
				return policy.Decision{Allow: r.HTTP.Path != "/denied", Policy: "test", Rule: "no-denied"}
			}))
			for _, path := range []string{"/allowed", "/denied"} {
				res, err := http.Get(m.outURL(path))
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
			}
			waitFor(t, func() bool { return len(logs.records(t, "inbound request", "/denied")) == 1 })
			if got := len(logs.records(t, "inbound request", "/allowed")) > 0; got != tc.allowLine {
				t.Errorf("allowed request logged: %v, want %v", got, tc.allowLine)
			}
			if got := len(logs.records(t, "outbound request", "/allowed")) > 0; got != tc.allowLine {
				t.Errorf("outbound request logged: %v, want %v", got, tc.allowLine)
			}
			if got := counter(t, m.catReg, "meshward_policy_denies_total", map[string]string{"rule": "no-denied"}); got != 1 {
				t.Errorf("meshward_policy_denies_total = %v, want 1", got)
			}
			got := counter(t, m.catReg, "meshward_requests_total", map[string]string{"decision": "allow"})
			if tc.perRequest && got != 1 || !tc.perRequest && got != 0 {
				t.Errorf("meshward_requests_total{decision=allow} = %v, per-request metrics %v", got, tc.perRequest)
			}
		})
	}
}

// TestTelemetryFromMeshConfig: the MeshConfig's spec.telemetry reaches a
// running sidecar with the policy, and the sidecar's own override wins.
func TestTelemetryFromMeshConfig(t *testing.T) {
	eng, err := policy.Compile([]policy.File{{Name: "mesh.yaml", Data: []byte(`apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: shop.local
  defaultAction: allow
  telemetry: {accessLog: true, metrics: false}
`)}}, policy.Options{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		override  policy.Telemetry
		allowLine bool
	}{
		{"the MeshConfig's", policy.Telemetry{}, true},
		{"overridden by the sidecar", policy.Telemetry{AccessLog: new(false)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			log, err := observe.NewLogger(&logs, "json", "info")
			if err != nil {
				t.Fatal(err)
			}
			app := newEchoApp(t, false, nil)
			m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, logger: log, telemetry: tc.override})
			m.cat.SetPolicy(eng)
			res, err := http.Get(m.outURL("/allowed"))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if tc.allowLine {
				waitFor(t, func() bool { return len(logs.records(t, "inbound request", "/allowed")) == 1 })
			} else if n := len(logs.records(t, "inbound request", "/allowed")); n != 0 {
				t.Errorf("%d access-log lines with the access log overridden off", n)
			}
			if got := counter(t, m.catReg, "meshward_requests_total", nil); got != 0 {
				t.Errorf("meshward_requests_total = %v with metrics: false", got)
			}
		})
	}
}

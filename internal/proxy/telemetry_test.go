package proxy

import (
	"net/http"
	"testing"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

// telemetryMesh is a sidecar pair with the overrides tel, logging JSON
// into logs; get makes one request and returns once both sidecars are done
// with it (their observers run after the access-log line), so a missing
// line is missing, not late.
func telemetryMesh(t *testing.T, tel policy.Telemetry) (m *mesh, logs *logBuffer, get func(path string)) {
	t.Helper()
	logs = &logBuffer{}
	log, err := observe.NewLogger(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	var in, out events
	app := newEchoApp(t, false, nil)
	m = newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, logger: log, telemetry: tel,
		observer: in.observe, frontObserver: out.observe})
	seen := func(e *events, path string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ev := range e.es {
			if ev.Path == path {
				return true
			}
		}
		return false
	}
	get = func(path string) {
		t.Helper()
		res, err := http.Get(m.outURL(path))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		waitFor(t, func() bool { return seen(&in, path) && seen(&out, path) })
	}
	return m, logs, get
}

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
			m, logs, get := telemetryMesh(t, tc.tel)
			m.cat.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
				return policy.Decision{Allow: r.HTTP.Path != "/denied", Policy: "test", Rule: "no-denied"}
			}))
			get("/allowed")
			get("/denied")
			if n := len(logs.records(t, "inbound request", "/denied")); n != 1 {
				t.Errorf("%d log lines of the denied request, want 1", n)
			}
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
			m, logs, get := telemetryMesh(t, tc.override)
			m.cat.SetPolicy(eng)
			get("/allowed")
			if got := len(logs.records(t, "inbound request", "/allowed")) == 1; got != tc.allowLine {
				t.Errorf("allowed request logged: %v, want %v", got, tc.allowLine)
			}
			if got := counter(t, m.catReg, "meshward_requests_total", nil); got != 0 {
				t.Errorf("meshward_requests_total = %v with metrics: false", got)
			}
		})
	}
}

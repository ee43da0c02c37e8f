package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store/bolt"
	"meshward.dev/meshward/internal/testpki"
)

// checkMesh is a real control plane (bolt store, CA, gRPC over mTLS) on a
// loopback port, with real identity sources as sidecars: they bootstrap
// with join tokens and report over the Watch stream.
type checkMesh struct {
	t     *testing.T
	dir   string
	addr  string // the control plane's
	admin *control.AdminClient
	ctx   context.Context
}

var checkTD = spiffeid.RequireTrustDomainFromString("shop.local")

// hashPolicy versions a policy set by its content, as the real compiler
// does, without compiling it (these tests are about distribution).
func hashPolicy(files []policy.File, _ []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Name))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// startCheckMesh starts the control plane. Its CA (root and intermediate)
// is created caAge ago by the CA's clock; the control plane's clock is the
// real one. The CA schedule does not tick during a test, so an old
// intermediate stays in place.
func startCheckMesh(t *testing.T, caAge time.Duration) *checkMesh {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var age atomic.Int64
	age.Store(int64(caAge))
	ctx, cancel := context.WithCancel(context.Background())
	authority, err := ca.New(ctx, ca.Config{TrustDomain: checkTD, Store: st, Now: func() time.Time { return time.Now().Add(-time.Duration(age.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	age.Store(0)
	srv, err := control.New(ctx, control.Config{TrustDomain: checkTD, Listen: "127.0.0.1:0", DataDir: dir, Store: st, CA: authority, CheckPolicy: hashPolicy, TickInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	admin, err := control.DialAdmin(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	m := &checkMesh{t: t, dir: dir, addr: srv.Addr().String(), admin: admin, ctx: ctx}
	t.Cleanup(func() {
		admin.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
		st.Close()
	})
	return m
}

// apply applies a policy set with one file holding content.
func (m *checkMesh) apply(content string) *apiv1.PolicyVersion {
	m.t.Helper()
	v, err := m.admin.ApplyPolicy(m.ctx, &apiv1.ApplyPolicyRequest{Files: []*apiv1.PolicyFile{{Name: "policies.yaml", Content: []byte(content)}}, AllowUnknownServices: true})
	if err != nil {
		m.t.Fatal(err)
	}
	return v
}

// sidecar joins service with a join token and reports the policy version
// of every update it takes; a frozen one keeps the first version it got
// (a sidecar that stopped taking pushes).
func (m *checkMesh) sidecar(service, inbound string, frozen bool) {
	m.t.Helper()
	tok, err := m.admin.CreateToken(m.ctx, &apiv1.CreateTokenRequest{Service: service, Namespace: "default", TtlSeconds: 60})
	if err != nil {
		m.t.Fatal(err)
	}
	var mu sync.Mutex
	version := ""
	src, err := session.New(m.ctx, session.Config{
		ControlAddr: m.addr, Token: tok.Token, TrustDomain: checkTD, ReportInterval: 20 * time.Millisecond,
		OnUpdate: func(u *apiv1.MeshUpdate) {
			mu.Lock()
			defer mu.Unlock()
			if v := u.GetPolicy().GetVersion(); v != "" && (!frozen || version == "") {
				version = v
			}
		},
		Report: func() *apiv1.WorkloadReport {
			mu.Lock()
			defer mu.Unlock()
			return &apiv1.WorkloadReport{InboundAddr: inbound, PolicyVersion: version}
		},
	})
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx) }()
	m.t.Cleanup(func() { cancel(); <-done; src.Close() })
}

// waitFor polls the mesh status until every service in want reports the
// policy version given (sidecars report asynchronously, every 20ms).
func (m *checkMesh) waitFor(want map[string]string) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := m.admin.MeshStatus(m.ctx, &apiv1.MeshStatusRequest{})
		if err != nil {
			m.t.Fatal(err)
		}
		got := map[string]string{}
		for _, w := range st.GetWorkloads() {
			if w.GetSvidSerial() != "" {
				got[w.GetService()] = w.GetPolicyVersion()
			}
		}
		if cmp.Equal(want, got) {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("sidecars report %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *checkMesh) check(args ...string) (stdout, stderr string, code int) {
	m.t.Helper()
	return runCLI(m.t, append([]string{"check", "--data-dir", m.dir}, args...)...)
}

// normalizeCheck replaces what differs between runs: the control plane's
// address, serials and fingerprints, times, durations, skews.
func normalizeCheck(s, controlAddr string) string {
	s = strings.ReplaceAll(s, controlAddr, "CONTROL_ADDR")
	for _, r := range []struct{ re, with string }{
		{`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`, "TIME"},
		{`\b[0-9a-f]{12,}\b…?`, "HEX"},
		{`"skew": "-?[0-9.]+[µnm]?s"`, `"skew": "SKEW"`},
		{`skew -?[0-9.]+[µnm]?s`, "skew SKEW"},
		{`in \d+[dhms]\b`, "in DUR"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.with)
	}
	return s
}

func assertCheckGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", t.Name(), name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil { //nolint:gosec // a test golden file
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (refresh with go test ./internal/cli -run %s -update)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestCheckHealthyMesh: a mesh whose sidecars all hold certificates of the
// current CA and the latest policy passes (exit 0), in text and JSON
// (golden files; refresh with go test ./internal/cli -run TestCheck -update).
func TestCheckHealthyMesh(t *testing.T) {
	m := startCheckMesh(t, 0)
	m.apply("v1")
	v2 := m.apply("v2")
	m.sidecar("web", "127.0.0.1:15001", false)
	m.sidecar("api", "127.0.0.1:15002", false)
	m.waitFor(map[string]string{"web": v2.Version, "api": v2.Version})

	out, errOut, code := m.check()
	if code != exitOK {
		t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"✔ control plane reachable at 127.0.0.1:",
		"✔ sidecar web at 127.0.0.1:15001: certificate",
		"✔ sidecar api at 127.0.0.1:15002 enforces revision 2",
		"cluster checks arrive with Kubernetes mode",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colors written to a pipe")
	}
	assertCheckGolden(t, "text", normalizeCheck(out, m.addr))

	out, errOut, code = m.check("-o", "json")
	if code != exitOK {
		t.Fatalf("-o json: exit %d, want 0:\n%s%s", code, out, errOut)
	}
	var rep struct {
		OK      bool `json:"ok"`
		Summary struct {
			Failed int `json:"failed"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Summary.Failed != 0 {
		t.Fatalf("json: %v, %+v:\n%s", err, rep, out)
	}
	assertCheckGolden(t, "json", normalizeCheck(out, m.addr))
}

// TestCheckStalePolicy: a sidecar that did not take the latest policy
// fails the policy check (exit 1), named, with what to do.
func TestCheckStalePolicy(t *testing.T) {
	m := startCheckMesh(t, 0)
	v1 := m.apply("v1")
	m.sidecar("web", "127.0.0.1:15001", false)
	m.sidecar("orders", "127.0.0.1:15003", true)
	m.waitFor(map[string]string{"web": v1.Version, "orders": v1.Version})
	v2 := m.apply("v2")
	m.waitFor(map[string]string{"web": v2.Version, "orders": v1.Version})

	out, errOut, code := m.check()
	if code != exitFindings {
		t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"✖ sidecar orders at 127.0.0.1:15003 enforces policy version " + short(v1.Version, 12) + ", not revision 2",
		"re-apply with `meshward policy apply DIR`, or restart the sidecar",
		"✔ sidecar web at 127.0.0.1:15001 enforces revision 2",
		"1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckIntermediateExpiring: an intermediate with less than a fifth
// of its life left (it should have rotated at half-life) warns, and the
// check still passes (exit 0).
func TestCheckIntermediateExpiring(t *testing.T) {
	m := startCheckMesh(t, 6*24*time.Hour) // a 7-day intermediate, 1 day left
	m.apply("v1")
	out, errOut, code := m.check()
	if code != exitOK {
		t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		`‼ intermediate [0-9a-f]{12}… expires in 2[34]h \(under 20% of its 7d lifetime left\)`,
		"it should have rotated at half-life: rotate with `meshward ca rotate`",
		`✔ root [0-9a-f]{12}… valid, expires in 35[89]d`,
		`checks passed with 2 warnings`, // the intermediate, and no sidecar connected
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %q:\n%s", want, out)
		}
	}
}

// TestCheckUnreachable: with no control plane, the first check fails and
// says how to fix it (exit 1); the rest are skipped.
func TestCheckUnreachable(t *testing.T) {
	// A data dir with a good admin credential, and a control plane
	// address where nothing listens.
	dataDir := startCheckMesh(t, 0).dir
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no credential", []string{"--data-dir", t.TempDir()}, []string{"✖ cannot call the control plane: no admin credential", "start it with `meshward control` or `meshward up`"}},
		{"nothing listens", []string{"--data-dir", dataDir, "--control", unusedAddr(t)}, []string{"✖ control plane unreachable", "is `meshward control` or `meshward up` running with --data-dir " + dataDir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"check", "--timeout", "5s"}, tc.args...)...)
			if code != exitFindings {
				t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
			}
			for _, w := range append(tc.want, "skipped: they need the control plane") {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "✔") {
				t.Errorf("a check passed without a control plane:\n%s", out)
			}
		})
	}
}

// TestCheckUsage: bad flags and arguments are usage errors (exit 2).
func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "-o", "sarif"},
		{"check", "extra"},
		{"check", "--timeout", "0s"},
		{"check", "--bogus"},
	} {
		if _, errOut, code := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
}

// TestCheckThresholds pins the expiry and clock thresholds.
func TestCheckThresholds(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cert := func(role string, born, left time.Duration) *apiv1.Certificate {
		return &apiv1.Certificate{Role: role, State: "active", Serial: "40cf15beae1283a4", NotBefore: now.Add(-born).Unix(), NotAfter: now.Add(left).Unix()}
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		got  checkResult
		want string
	}{
		{"intermediate at half-life", caCheck(cert("intermediate", 3*day, 4*day), now), checkPass},
		{"intermediate above a fifth", caCheck(cert("intermediate", 5*day, 2*day), now), checkPass},
		{"intermediate under a fifth", caCheck(cert("intermediate", 6*day, day), now), checkWarn},
		{"intermediate expired", caCheck(cert("intermediate", 8*day, -time.Second), now), checkFail},
		{"intermediate not yet valid", caCheck(cert("intermediate", -time.Hour, 7*day), now), checkFail},
		{"root with 60 of 365 days left", caCheck(cert("root", 305*day, 60*day), now), checkWarn},
		{"root with 100 of 365 days left", caCheck(cert("root", 265*day, 100*day), now), checkPass},
		{"retiring root near expiry", caCheck(&apiv1.Certificate{Role: "root", State: "retiring", NotBefore: now.Add(-364 * day).Unix(), NotAfter: now.Add(day).Unix()}, now), checkPass},
		{"clock 900ms ahead", clockCheck(now.Add(900*time.Millisecond), now, now), checkPass},
		{"clock 2s behind", clockCheck(now.Add(-2*time.Second), now, now), checkWarn},
		{"clock 30s ahead", clockCheck(now.Add(30*time.Second), now, now), checkWarn},
		{"clock 31s behind", clockCheck(now.Add(-31*time.Second), now, now), checkFail},
		{"clock: round trip counted half", clockCheck(now.Add(2*time.Second), now, now.Add(3*time.Second)), checkPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Status != tc.want {
				t.Errorf("status %s, want %s: %s", tc.got.Status, tc.want, tc.got.Message)
			}
			if tc.got.Status == checkFail && tc.got.Hint == "" {
				t.Errorf("a failure without a hint: %s", tc.got.Message)
			}
		})
	}
}

// TestCheckVerifiesSidecarChains: a sidecar certificate is verified
// against the bundle, so a chain from another CA under the reported serial,
// an expired one, one naming another identity, or one the control plane
// never saw fail, each with a hint.
func TestCheckVerifiesSidecarChains(t *testing.T) {
	mesh := testpki.NewCA(t, "shop.local").Intermediate(t)
	other := testpki.NewCA(t, "shop.local").Intermediate(t)
	web := spiffeid.RequireFromString("spiffe://shop.local/ns/default/sa/web")
	now := time.Now()
	chainOf := func(ca *testpki.CA, id spiffeid.ID, l testpki.Leaf) (string, *apiv1.CertChain) {
		svid := ca.IssueSVID(t, id, l)
		c := &apiv1.CertChain{}
		for _, x := range svid.Certificates {
			c.Certs = append(c.Certs, x.Raw)
		}
		return identity.SerialHex(svid.Certificates[0]), c
	}
	bundle := [][]byte{}
	for _, r := range mesh.Bundle().X509Authorities() {
		bundle = append(bundle, r.Raw)
	}
	for _, tc := range []struct {
		name   string
		ca     *testpki.CA
		id     string
		leaf   testpki.Leaf
		noSeen bool
		want   string
		msg    string
	}{
		{name: "good", ca: mesh, id: web.String(), want: checkPass, msg: "chains to root"},
		{name: "another CA", ca: other, id: web.String(), want: checkFail, msg: "does not chain to the current trust bundle"},
		{name: "expired", ca: mesh, id: web.String(), leaf: testpki.Leaf{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Minute)}, want: checkFail, msg: "expired at"},
		{name: "another identity", ca: mesh, id: "spiffe://shop.local/ns/default/sa/api", want: checkFail, msg: "not the sidecar's identity"},
		{name: "renewal overdue", ca: mesh, id: web.String(), leaf: testpki.Leaf{NotBefore: now.Add(-55 * time.Minute), NotAfter: now.Add(5 * time.Minute)}, want: checkWarn, msg: "renewal is overdue"},
		{name: "never seen", ca: mesh, id: web.String(), noSeen: true, want: checkFail, msg: "never issued or saw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial, chain := chainOf(tc.ca, spiffeid.RequireFromString(tc.id), tc.leaf)
			resp := &apiv1.MeshCheckResponse{
				Bundle: bundle, Chains: map[string]*apiv1.CertChain{serial: chain},
				Status: &apiv1.MeshStatusResponse{TrustDomain: "shop.local", Workloads: []*apiv1.WorkloadStatus{{SpiffeId: web.String(), Service: "web", Namespace: "default", SvidSerial: serial}}},
			}
			if tc.noSeen {
				resp.Chains = nil
			}
			got := sidecarCertChecks(resp, now)
			if len(got) != 1 || got[0].Status != tc.want || !strings.Contains(got[0].Message, tc.msg) {
				t.Fatalf("got %+v, want %s %q", got, tc.want, tc.msg)
			}
			if tc.want == checkFail && !strings.Contains(got[0].Hint, "restart the sidecar") {
				t.Errorf("hint %q does not say to restart the sidecar", got[0].Hint)
			}
		})
	}
}

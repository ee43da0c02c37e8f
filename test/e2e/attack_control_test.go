//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

// controlAttackStart runs `meshward control` and returns it with the
// address of its dashboard and /metrics.
func controlAttackStart(t *testing.T, dataDir, addr string) (*proc, string) {
	t.Helper()
	dash := freePort(t)
	p := start(t, nil, "control", "--data-dir", dataDir, "--listen", addr, "--trust-domain", "e2e.local", "--dashboard", dash)
	p.waitOutput(t, "control plane listening", 20*time.Second)
	return p, dash
}

// controlAttackClient is the attacker's hand-written gRPC client: it
// redeems a real join token for service (Bootstrap, as a sidecar does) and
// talks to the control plane with the SVID it got.
func controlAttackClient(t *testing.T, dataDir, ctrlAddr, service string) apiv1.ControlClient {
	t.Helper()
	tok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", service, "--data-dir", dataDir))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src, err := session.New(ctx, session.Config{ControlAddr: ctrlAddr, Token: tok})
	if err != nil {
		t.Fatalf("bootstrap %s: %v", service, err)
	}
	t.Cleanup(func() { src.Close() })
	svid, err := src.Holder().GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"},
		InsecureSkipVerify: true} // the attacker does not care who answers
	conn, err := grpc.NewClient(ctrlAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return apiv1.NewControlClient(conn)
}

// controlAttackMetric reads one series of the control plane's /metrics.
func controlAttackMetric(t *testing.T, dash, series string) float64 {
	t.Helper()
	res, err := http.Get("http://" + dash + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

type controlAttackEvent struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail"`
}

// controlAttackAudit runs the real `meshward audit -o json`.
func controlAttackAudit(t *testing.T, dataDir string) []controlAttackEvent {
	t.Helper()
	out := mustMeshward(t, "audit", "--since", "10m", "-o", "json", "--data-dir", dataDir)
	var evs []controlAttackEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e controlAttackEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// TestAttackControlForgedAuditTrail is issue 13 item 3 against the real
// binary: a workload holding a real SVID (web) reports 20,000 denies,
// attributed to another service and backdated, in one report. The trail
// records none about another service, only receive times, and a bounded
// number; the drop counter rises; and `meshward audit` still reads a
// trail larger than the 4 MB gRPC message limit from the real store.
func TestAttackControlForgedAuditTrail(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctrlAddr := freePort(t)
	ctrl, dash := controlAttackStart(t, dataDir, ctrlAddr)
	c := controlAttackClient(t, dataDir, ctrlAddr, "web")
	db := filepath.Join(dataDir, bolt.FileName)
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := fi.Size()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	backdated := start.Add(-30 * 24 * time.Hour).UnixNano()
	forged := &apiv1.WorkloadReport{}
	for i := range 20000 {
		dest := "payments"
		if i%4 == 0 {
			dest = "web" // its own service, but backdated
		}
		forged.Denies = append(forged.Denies, &apiv1.Deny{Time: backdated, Source: "spiffe://e2e.local/ns/default/sa/frontend",
			Destination: dest, Port: 8080, Method: "POST", Path: fmt.Sprintf("/transfer/%d", i), Rule: "default-deny", Mode: "enforce"})
	}
	t.Logf("forged report: %d denies, %d bytes", len(forged.Denies), proto.Size(forged))
	if err := w.Send(forged); err != nil {
		t.Fatal(err)
	}
	foreign := `meshward_control_report_items_dropped_total{reason="foreign_destination"}`
	deadline := time.Now().Add(20 * time.Second)
	for controlAttackMetric(t, dash, foreign) < 15000 {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want 15000", foreign, controlAttackMetric(t, dash, foreign))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := controlAttackMetric(t, dash, `meshward_control_report_items_dropped_total{reason="report_bound"}`); got != 5000-100 {
		t.Errorf("report_bound drops = %v, want %d", got, 5000-100)
	}

	evs := controlAttackAudit(t, dataDir)
	recorded := 0
	for _, e := range evs {
		if !strings.HasPrefix(e.Action, "request.") {
			continue
		}
		recorded++
		if e.Subject != "web" {
			t.Errorf("web's report put a deny about %q in the trail: %+v", e.Subject, e)
		}
		if e.Time.Before(start.Add(-time.Second)) {
			t.Errorf("deny recorded at the claimed time %v, not the receive time: %+v", e.Time, e)
		}
	}
	if recorded == 0 || recorded > 101 { // 100 per report, plus one summary
		t.Errorf("recorded %d denies from one report, want 1..101", recorded)
	}
	if fi, err = os.Stat(db); err != nil {
		t.Fatal(err)
	}
	if grown := fi.Size() - sizeBefore; grown > 2<<20 {
		t.Errorf("the store grew by %d bytes", grown)
	}
	cancel()

	// A trail larger than the gRPC message limit, in the real store, read
	// with the real CLI.
	ctrl.stop(t)
	st, err := bolt.Open(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	detail := strings.Repeat("x", 2000)
	const n = 3000 // about 6 MB
	errc := make(chan error, 30)
	for range 30 { // concurrent appends share bbolt batches
		go func() {
			for range n / 30 {
				if err := st.AppendAudit(context.Background(), store.AuditEvent{Time: time.Now(), Action: "request.deny", Actor: "a", Subject: "bulk", Detail: detail, Outcome: "denied"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 30 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	controlAttackStart(t, dataDir, ctrlAddr)
	bulk := 0
	for _, e := range controlAttackAudit(t, dataDir) {
		if e.Subject == "bulk" && e.Detail == detail {
			bulk++
		}
	}
	if bulk != n {
		t.Fatalf("meshward audit read %d of %d events of a ~6 MB trail", bulk, n)
	}
}

// TestAttackControlBanCutsOff is issue 13 item 5: three services with a
// real control plane and sidecars; after `meshward identity ban` of one
// (target), the caller's sidecar refuses to reach it, the registry drops
// its endpoints, and a Watch by the banned identity gets only the ban.
func TestAttackControlBanCutsOff(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctrlAddr := freePort(t)
	controlAttackStart(t, dataDir, ctrlAddr)

	var targetHits atomic.Int64
	apiApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "api") }))
	t.Cleanup(apiApp.Close)
	targetApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		fmt.Fprintf(w, "target saw %s", r.Header.Get("Authorization"))
	}))
	t.Cleanup(targetApp.Close)

	pol := t.TempDir()
	var rules strings.Builder
	rules.WriteString("apiVersion: meshward.dev/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: e2e.local}\n")
	for _, svc := range []string{"api", "target"} {
		fmt.Fprintf(&rules, `---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: %[1]s, namespace: default}
spec:
  target: %[1]s
  rules:
    - name: client-reads
      from: [{service: client}]
      to: [{methods: [GET]}]
`, svc)
	}
	if err := os.WriteFile(filepath.Join(pol, "mesh.yaml"), []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustMeshward(t, "policy", "apply", pol, "--data-dir", dataDir)

	sidecar := func(service string, args ...string) {
		tok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", service, "--data-dir", dataDir))
		start(t, []string{"MESHWARD_TOKEN=" + tok}, append([]string{"proxy", "--service", service, "--control", ctrlAddr}, args...)...).
			waitOutput(t, "policy in force", 20*time.Second)
	}
	sidecar("api", "--inbound", freePort(t), "--app", strings.TrimPrefix(apiApp.URL, "http://"), "--admin", freePort(t))
	sidecar("target", "--inbound", freePort(t), "--app", strings.TrimPrefix(targetApp.URL, "http://"), "--admin", freePort(t))
	toAPI, toTarget, clientAdmin := freePort(t), freePort(t), freePort(t)
	sidecar("client", "--upstream", "api="+toAPI, "--upstream", "target="+toTarget, "--admin", clientAdmin)
	waitStatus(t, "http://"+toAPI+"/", 200, 20*time.Second)
	waitStatus(t, "http://"+toTarget+"/", 200, 20*time.Second)

	endpoints := func() map[string][]string {
		t.Helper()
		res, err := http.Get("http://" + clientAdmin + "/endpoints")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string][]string
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if len(endpoints()["target"]) == 0 {
		t.Fatalf("client knows no endpoint of target before the ban: %v", endpoints())
	}

	// The attacker holds target's identity too (a real SVID of it).
	attacker := controlAttackClient(t, dataDir, ctrlAddr, "target")

	const targetID = "spiffe://e2e.local/ns/default/sa/target"
	mustMeshward(t, "identity", "ban", targetID, "--reason", "compromised", "--data-dir", dataDir)
	deadline := time.Now().Add(20 * time.Second)
	for len(endpoints()["target"]) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("client still routes to the banned target: %v", endpoints())
		}
		time.Sleep(100 * time.Millisecond)
	}
	hits := targetHits.Load()
	for range 5 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+toTarget+"/", nil)
		req.Header.Set("Authorization", "Bearer secret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("a call to the banned target got 200: %s", body)
		}
	}
	if got := targetHits.Load(); got != hits {
		t.Errorf("the banned target's app got %d requests (and their credentials) after the ban", got-hits)
	}
	if code, body := curl(t, "http://"+toAPI+"/"); code != 200 || body != "api" {
		t.Errorf("api after target's ban: %d %q", code, body)
	}

	// The banned identity's Watch stream carries only the fact.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := attacker.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(&apiv1.WorkloadReport{InboundAddr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	u, err := w.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := &apiv1.MeshUpdate{BannedSelf: true, Banned: []string{targetID}}
	if !proto.Equal(u, want) {
		t.Fatalf("the banned identity's Watch got %v, want only %v", u, want)
	}
	// Its report registered nothing.
	time.Sleep(time.Second)
	if eps := endpoints()["target"]; len(eps) > 0 {
		t.Fatalf("a banned identity's report put %v into the registry", eps)
	}
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// handedOut are the ports freePort has returned in this run.
var handedOut sync.Map

// freePort returns a loopback address whose port was free just now and
// was not returned before: the kernel readily hands a just-closed port out
// again, and two listeners of one test must not be given the same one.
func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		if _, seen := handedOut.LoadOrStore(addr, true); !seen {
			return addr
		}
	}
	t.Fatal("no fresh loopback port in 100 tries")
	return ""
}

func startControl(t *testing.T, dataDir, addr string) *proc {
	t.Helper()
	p := start(t, nil, "control", "--data-dir", dataDir, "--listen", addr, "--trust-domain", "e2e.local", "--dashboard", freePort(t))
	p.waitOutput(t, "control plane listening", 20*time.Second)
	return p
}

func rootFingerprint(t *testing.T, dataDir string) string {
	t.Helper()
	var st struct {
		Certificates []struct {
			Role, State, Fingerprint string
		} `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(mustMeshward(t, "ca", "show", "-o", "json", "--data-dir", dataDir)), &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Certificates {
		if c.Role == "root" && c.State == "active" {
			return c.Fingerprint
		}
	}
	t.Fatal("no active root")
	return ""
}

// TestControlPlaneDownUnderLoad kills the control plane (-9) for 15 s while
// traffic flows between two sidecars: no request may fail, because sidecars
// keep serving on cached certificates and policy; then it comes back and the
// sidecars reconnect.
func TestControlPlaneDownUnderLoad(t *testing.T) {
	dataDir, ctrlAddr, ctrl, up := twoSidecars(t, nil)
	waitStatus(t, "http://"+up+"/", 200, 20*time.Second)
	if _, body := curl(t, "http://"+up+"/"); body != "hello spiffe://e2e.local/ns/default/sa/client" {
		t.Fatalf("body = %q", body)
	}

	type result struct {
		sent, failed int64
		err          error
	}
	done := make(chan result, 1)
	go func() {
		s, f, err := load("http://"+up+"/", 200, 25*time.Second)
		done <- result{s, f, err}
	}()
	time.Sleep(3 * time.Second)
	ctrl.kill9(t)
	time.Sleep(15 * time.Second)
	ctrl = startControl(t, dataDir, ctrlAddr)
	r := <-done
	t.Logf("%d requests, %d failed, control plane down for 15s", r.sent, r.failed)
	if r.failed != 0 {
		t.Fatalf("%d of %d requests failed while the control plane was down (first: %v)", r.failed, r.sent, r.err)
	}
	if r.sent < 4000 {
		t.Fatalf("only %d requests sent", r.sent)
	}
	// The sidecars reconnect to the restarted control plane.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st status
		json.Unmarshal([]byte(mustMeshward(t, "status", "-o", "json", "--data-dir", dataDir)), &st)
		if len(st.Workloads) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workloads reconnected, want 2", len(st.Workloads))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// twoSidecars runs a control plane, an app behind an "api" sidecar, and a
// "client" sidecar with an upstream listener for api; env goes to both
// sidecars. It returns the data dir, the control plane and the upstream
// listener's address.
func twoSidecars(t *testing.T, env []string) (dataDir, ctrlAddr string, ctrl *proc, upstream string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	ctrlAddr = freePort(t)
	ctrl = startControl(t, dataDir, ctrlAddr)

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Meshward-Peer-Identity"))
	}))
	t.Cleanup(app.Close)

	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "api.yaml"), []byte(`apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: e2e.local}
---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api, namespace: default}
spec:
  target: api
  rules:
    - name: client-reads
      from: [{service: client}]
      to: [{methods: [GET]}]
`), 0o600)
	mustMeshward(t, "policy", "apply", pol, "--data-dir", dataDir)

	apiTok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", "api", "--data-dir", dataDir))
	start(t, append([]string{"MESHWARD_TOKEN=" + apiTok}, env...), "proxy", "--service", "api", "--control", ctrlAddr,
		"--inbound", freePort(t), "--app", strings.TrimPrefix(app.URL, "http://"), "--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)
	upstream = freePort(t)
	cliTok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", "client", "--data-dir", dataDir))
	start(t, append([]string{"MESHWARD_TOKEN=" + cliTok}, env...), "proxy", "--service", "client", "--control", ctrlAddr,
		"--upstream", "api="+upstream, "--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)
	return dataDir, ctrlAddr, ctrl, upstream
}

// TestControlPlaneKilledMidIssuance kills the control plane (-9) while
// workloads bootstrap: after a restart the CA is the same, the store opens,
// and no token has been good twice.
func TestControlPlaneKilledMidIssuance(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctrlAddr := freePort(t)
	ctrl := startControl(t, dataDir, ctrlAddr)
	root := rootFingerprint(t, dataDir)
	var tokens []string
	for i := 0; i < 30; i++ {
		tokens = append(tokens, strings.TrimSpace(mustMeshward(t, "token", "create", "--service", fmt.Sprintf("svc%d", i), "--data-dir", dataDir)))
	}
	var mu sync.Mutex
	successes := map[string]int{}
	fetch := func(tok string) bool {
		_, _, code := meshward(t, "identity", "fetch", "--token", tok, "--control", ctrlAddr, "--out", t.TempDir())
		if code == 0 {
			mu.Lock()
			successes[tok]++
			mu.Unlock()
		}
		return code == 0
	}
	// All bootstraps at once; the control plane dies as soon as the first
	// few have been issued, with the rest in flight.
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !fetch(tok) {
				failed.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(successes)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no bootstrap succeeded before the kill")
		}
	}
	ctrl.kill9(t)
	wg.Wait()
	if failed.Load() == 0 {
		t.Fatal("every bootstrap finished before the kill: nothing was in flight")
	}
	t.Logf("kill -9 with bootstraps in flight: %d succeeded, %d cut off", len(successes), failed.Load())

	startControl(t, dataDir, ctrlAddr)
	if got := rootFingerprint(t, dataDir); got != root {
		t.Fatalf("CA changed across kill -9: %s -> %s", root, got)
	}
	// Every token, tried twice more: none may ever succeed twice in all,
	// and the ones the kill cut off before redemption still work once.
	for _, tok := range tokens {
		fetch(tok)
		fetch(tok)
	}
	for tok, n := range successes {
		if n > 1 {
			t.Fatalf("token %s… was redeemed %d times", tok[:12], n)
		}
	}
	if len(successes) != len(tokens) {
		t.Logf("%d tokens were consumed by a bootstrap the kill interrupted (single use holds)", len(tokens)-len(successes))
	}
}

//go:build e2e

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const frontend = "http://127.0.0.1:8080"

type status struct {
	Policy struct {
		Revision int64  `json:"revision"`
		Version  string `json:"version"`
	} `json:"policy"`
	Workloads []struct {
		Service     string `json:"service"`
		InboundAddr string `json:"inbound_addr"`
		SvidSerial  string `json:"svid_serial"`
		AdminAddr   string `json:"admin_addr"`
	} `json:"workloads"`
	Ca struct {
		Phase string `json:"phase"`
	} `json:"ca"`
}

func meshStatus(t *testing.T, dataDir string) status {
	t.Helper()
	var st status
	if err := json.Unmarshal([]byte(mustMeshward(t, "status", "-o", "json", "--data-dir", dataDir)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDemo runs `meshward up --demo` and walks through what a newcomer
// does, then what an attacker and an operator do to it.
func TestDemo(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), ".meshward")
	began := time.Now()
	up := start(t, nil, "up", "--demo", "--data-dir", dataDir)
	up.waitOutput(t, "is up", 60*time.Second)
	t.Logf("demo up in %s", time.Since(began).Round(time.Millisecond))

	t.Run("allowed calls succeed through the mesh", func(t *testing.T) {
		code, body := curl(t, frontend+"/api/products")
		if code != 200 || !strings.Contains(body, `"answered_by": "spiffe://shop.local/ns/default/sa/catalog"`) {
			t.Fatalf("GET /api/products = %d %s", code, body)
		}
		code, body = curl(t, "-X", "POST", "-d", `{"product":2}`, frontend+"/api/orders")
		if code != 201 || !strings.Contains(body, `"charged_by": "spiffe://shop.local/ns/default/sa/payments"`) {
			t.Fatalf("POST /api/orders = %d %s", code, body)
		}
	})

	t.Run("a forbidden call gets 403 and an audit line", func(t *testing.T) {
		code, body := curl(t, frontend+"/api/forbidden")
		if code != 403 || !strings.Contains(body, `"allowed": false`) {
			t.Fatalf("GET /api/forbidden = %d %s", code, body)
		}
		up.waitOutput(t, `msg="request denied" component=proxy service=payments peer=spiffe://shop.local/ns/default/sa/frontend policy=payments rule=default-deny`, 5*time.Second)
	})

	st := meshStatus(t, dataDir)
	if len(st.Workloads) != 4 {
		t.Fatalf("status shows %d workloads, want 4", len(st.Workloads))
	}

	t.Run("every inbound port refuses plaintext and clients without a certificate", func(t *testing.T) {
		for _, w := range st.Workloads {
			// Plaintext HTTP with the real curl.
			if code, body := curl(t, "http://"+w.InboundAddr+"/products"); code != 0 {
				t.Errorf("%s: plaintext HTTP got status %d %q", w.Service, code, body)
			}
			// Raw plaintext bytes: the connection must close without
			// reaching the app.
			c, err := net.DialTimeout("tcp", w.InboundAddr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("PING\r\n\r\n"))
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			c.Close()
			if n > 0 && !isTLSAlert(buf[:n]) {
				t.Errorf("%s: raw plaintext got %q", w.Service, buf[:n])
			}
			// TLS without a client certificate.
			tc, err := tls.Dial("tcp", w.InboundAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
			if err == nil {
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = tc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
				if err == nil {
					_, err = tc.Read(buf)
				}
				tc.Close()
			}
			if err == nil {
				t.Errorf("%s: a client without a certificate got through", w.Service)
			}
		}
	})

	t.Run("tap, audit and metrics show what happened", func(t *testing.T) {
		tap := start(t, nil, "tap", "payments", "--decision", "deny", "--max", "1", "-o", "json", "--data-dir", dataDir)
		time.Sleep(500 * time.Millisecond) // let tap connect to the sidecar
		curl(t, frontend+"/api/forbidden")
		tap.waitOutput(t, `"rule":"default-deny"`, 10*time.Second)
		if !strings.Contains(tap.out.String(), `"source":"spiffe://shop.local/ns/default/sa/frontend"`) {
			t.Fatalf("tap output: %s", tap.out.String())
		}
		// The deny reaches the control plane's audit trail.
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := mustMeshward(t, "audit", "--since", "5m", "-o", "json", "--data-dir", dataDir)
			if strings.Contains(out, `"action":"request.deny"`) && strings.Contains(out, "rule=default-deny policy=payments") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no request.deny in meshward audit:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		var admin string
		for _, w := range meshStatus(t, dataDir).Workloads {
			if w.Service == "payments" {
				admin = w.AdminAddr
			}
		}
		code, body := curl(t, "http://"+admin+"/metrics")
		found := false
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "meshward_requests_total{") && strings.Contains(line, `code="403",decision="deny"`) &&
				strings.Contains(line, `source="spiffe://shop.local/ns/default/sa/frontend"`) && !strings.HasSuffix(line, " 0") {
				found = true
			}
		}
		if code != 200 || !found {
			t.Fatalf("payments sidecar /metrics (%d) lacks the deny:\n%s", code, body)
		}
	})

	t.Run("a bad policy is rejected and the old one stays enforced", func(t *testing.T) {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, "payments.yaml"), []byte("apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: payments, namespace: default}\nspec:\n  target: payments\n  rules:\n    - name: open\n      from: [{service: frontend}]\n      to:\n        - methods: [PSOT]\n"), 0o600)
		_, stderr, code := meshward(t, "policy", "apply", bad, "--data-dir", dataDir)
		if code != 2 || !strings.Contains(stderr, "payments.yaml:10") || !strings.Contains(stderr, "PSOT") {
			t.Fatalf("apply of a bad policy: exit %d, stderr %q; want exit 2 naming payments.yaml:10 and PSOT", code, stderr)
		}
		after := meshStatus(t, dataDir)
		if after.Policy.Version != st.Policy.Version {
			t.Fatalf("policy changed from %s to %s", st.Policy.Version, after.Policy.Version)
		}
		if code, _ := curl(t, frontend+"/api/forbidden"); code != 403 {
			t.Fatalf("forbidden call after a rejected apply: %d", code)
		}
		if code, _ := curl(t, frontend+"/api/products"); code != 200 {
			t.Fatalf("allowed call after a rejected apply: %d", code)
		}
	})

	t.Run("a ban takes effect mesh-wide and lifts", func(t *testing.T) {
		id := "spiffe://shop.local/ns/default/sa/frontend"
		mustMeshward(t, "identity", "ban", id, "--reason", "e2e", "--data-dir", dataDir)
		waitStatus(t, frontend+"/api/products", 403, 10*time.Second)
		up.waitOutput(t, "rule=banned", 5*time.Second)
		mustMeshward(t, "identity", "unban", id, "--data-dir", dataDir)
		waitStatus(t, frontend+"/api/products", 200, 10*time.Second)
	})

	t.Run("a crashed app is restarted and nothing else is disturbed", func(t *testing.T) {
		others := pids(t, " demo-app payments", " demo-app orders", "-proxy --service catalog")
		killAll(t, " demo-app catalog")
		up.waitOutput(t, "catalog exited (killed by killed)", 10*time.Second)
		waitStatus(t, frontend+"/api/products", 200, 20*time.Second)
		if got := pids(t, " demo-app payments", " demo-app orders", "-proxy --service catalog"); got != others {
			t.Fatalf("other processes changed: %s -> %s", others, got)
		}
	})

	t.Run("a crashed sidecar is restarted and its app keeps its ports", func(t *testing.T) {
		app := pids(t, " demo-app catalog")
		killAll(t, "-proxy --service catalog")
		up.waitOutput(t, "catalog-proxy exited (killed by killed)", 10*time.Second)
		waitStatus(t, frontend+"/api/products", 200, 30*time.Second)
		if got := pids(t, " demo-app catalog"); got != app {
			t.Fatalf("catalog app was restarted (%s -> %s); only its sidecar crashed", app, got)
		}
	})

	t.Run("rotations under steady load lose no request", func(t *testing.T) {
		type result struct {
			sent, failed int64
			err          error
		}
		done := make(chan result, 1)
		go func() {
			s, f, err := load(frontend+"/api/products", 200, 20*time.Second)
			done <- result{s, f, err}
		}()
		time.Sleep(3 * time.Second)
		mustMeshward(t, "ca", "rotate", "--data-dir", dataDir)
		time.Sleep(3 * time.Second)
		mustMeshward(t, "ca", "rotate", "--root", "--data-dir", dataDir)
		r := <-done
		t.Logf("%d requests, %d failed", r.sent, r.failed)
		if r.failed != 0 {
			t.Fatalf("%d of %d requests failed during rotation (first: %v)", r.failed, r.sent, r.err)
		}
		if r.sent < 3000 {
			t.Fatalf("only %d requests sent; the load did not run", r.sent)
		}
		// With every workload renewed under the new root, the rotation
		// waits in retire for the old root's certificates to expire.
		phase := meshStatus(t, dataDir).Ca.Phase
		if phase != "retire" {
			t.Fatalf("root rotation phase = %s, want retire (every workload renewed under the new root)", phase)
		}
		if code, _ := curl(t, frontend+"/api/forbidden"); code != 403 {
			t.Fatalf("forbidden call after rotation: %d", code)
		}
	})
}

func isTLSAlert(b []byte) bool { return len(b) > 0 && b[0] == 0x15 }

// pids returns the pids of processes whose command line contains each
// pattern, as one comparable string.
func pids(t *testing.T, patterns ...string) string {
	t.Helper()
	var parts []string
	for _, p := range patterns {
		out, _ := exec.Command("pgrep", "-f", bin+p).Output()
		parts = append(parts, p+"="+strings.Join(strings.Fields(string(out)), ","))
	}
	return strings.Join(parts, " ")
}

func killAll(t *testing.T, pattern string) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", bin+pattern).Output()
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("no process matches %q", pattern)
	}
	for _, s := range f {
		pid, _ := strconv.Atoi(s)
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}

func waitStatus(t *testing.T, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var code int
	var body string
	for time.Now().Before(deadline) {
		if code, body = curl(t, url); code == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: status %d %s, want %d within %s", url, code, body, want, d)
}

//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestAttackInvalidUTF8 is issue 13 item 1: a caller no policy allows
// sends strings that are not UTF-8 (GET /%ff through its outbound
// listener, raw bytes in a header value, and, straight to the target's
// inbound with its own SVID over HTTP/2, a method token that is not
// UTF-8), again and again. Before the fix the target sidecar's deny report
// would not marshal, its Watch stream ended, the control plane dropped its
// endpoints (the allowed caller got 503) and the denies were lost. Now the
// allowed caller is served throughout, the target's Watch stream is never
// reopened, and every deny reaches `meshward audit` with the bytes sent
// escaped (\xff).
func TestAttackInvalidUTF8(t *testing.T) {
	m := utf8Mesh(t)
	// Attack once the control plane trusts its registry to be complete
	// (20 s after it started: before that a sidecar that left keeps its
	// endpoints in every caller, and the outage would not show).
	time.Sleep(time.Until(m.ctrlStarted.Add(21 * time.Second)))

	// The allowed caller, all the way through.
	var sent, failed atomic.Int64
	var firstFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			sent.Add(1)
			res, err := client.Get("http://" + m.clientUp + "/")
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", res.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly), err))
			}
		}
	})

	const rounds = 5
	var want []string // audit details, as the control plane records them
	for i := range rounds {
		// Through the intruder's outbound listener: its sidecar forwards
		// both over mTLS; the api sidecar refuses the first (the path
		// is not UTF-8: 400) and denies the second by policy.
		if code := utf8Raw(t, m.intruderUp, fmt.Sprintf("GET /%%ff/r%d HTTP/1.1\r\nHost: api\r\n\r\n", i)); code != http.StatusBadRequest {
			t.Errorf("round %d: GET /%%ff: %d, want 400", i, code)
		}
		if code := utf8Raw(t, m.intruderUp, fmt.Sprintf("GET /hdr/r%d HTTP/1.1\r\nHost: api\r\nX-Note: \xff\xfe\r\n\r\n", i)); code != http.StatusForbidden {
			t.Errorf("round %d: raw header bytes: %d, want 403", i, code)
		}
		// Straight to the api inbound as intruder (its own SVID), over
		// HTTP/2, where the method token is not checked for UTF-8.
		utf8H2(t, m, "G\xe9T", fmt.Sprintf("/m%%ff/r%d", i))
		want = append(want,
			fmt.Sprintf(`GET /\xff/r%d port`, i),
			fmt.Sprintf(`GET /hdr/r%d port`, i),
			fmt.Sprintf(`G\xe9T /m\xff/r%d port`, i))
		time.Sleep(time.Second)
	}
	// Long paths of bytes that are not UTF-8 (60 KB raw over HTTP/2,
	// 240 KB escaped): each deny reaches the audit trail, its path
	// clipped, and a report of many stays within the control plane's
	// message bound.
	for i := range 20 {
		utf8H2(t, m, "GET", fmt.Sprintf("/big%d/", i)+strings.Repeat("\xff", 60_000))
		want = append(want, fmt.Sprintf(`GET /big%d/\xff\xff`, i))
	}
	// Past the reconnect backoff a broken stream would be in.
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("allowed caller: %d requests during the attack, %d failed", sent.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("the allowed caller failed %d of %d requests during the attack (first: %v)", n, sent.Load(), firstFail.Load())
	}
	if sent.Load() < 50 {
		t.Errorf("only %d allowed requests sent", sent.Load())
	}

	// Every deny reaches the audit trail, escaped.
	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		details := utf8AuditDenies(t, m.dataDir, m.intruderID)
		missing = missing[:0]
		for _, w := range want {
			if !utf8AnyHasPrefix(details, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			if len(missing) > 0 {
				t.Errorf("denies missing from meshward audit: %q\naudit has: %q", missing, details)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The api sidecar's Watch stream was never reset: one session.
	if n := utf8Metric(t, m.apiAdmin, "meshward_control_watch_sessions_total"); n != 1 {
		t.Errorf("api sidecar opened %v Watch streams, want 1 (the stream was reset); output:\n%s", n, utf8Quiet(m.api.out.String()))
	}
	// The proxy made every event printable: the report guard (the second
	// line of defence) found nothing to escape or drop.
	for _, name := range []string{"meshward_report_strings_escaped_total", "meshward_report_denies_unmarshalable_total"} {
		if n := utf8Metric(t, m.apiAdmin, name); n != 0 {
			t.Errorf("%s = %v, want 0", name, n)
		}
	}
	if strings.Contains(m.api.out.String(), "watch stream to control plane lost") {
		t.Errorf("api sidecar lost its watch stream:\n%s", utf8Quiet(m.api.out.String()))
	}
}

// utf8MeshT is a control plane, an app behind an "api" sidecar, a
// "client" sidecar that policy lets GET api, and an "intruder" sidecar
// that no policy allows, plus the intruder's own SVID on disk.
type utf8MeshT struct {
	dataDir     string
	ctrlStarted time.Time
	api         *proc
	apiInbound  string
	apiAdmin    string
	clientUp    string
	intruderUp  string
	intruderID  string
	intruderTLS *tls.Config // intruder's SVID, for calls straight to the api inbound (ALPN h2)
}

func utf8Mesh(t *testing.T) *utf8MeshT {
	t.Helper()
	m := &utf8MeshT{dataDir: filepath.Join(t.TempDir(), "data"), intruderID: "spiffe://e2e.local/ns/default/sa/intruder"}
	ctrlAddr := freePort(t)
	m.ctrlStarted = time.Now()
	startControl(t, m.dataDir, ctrlAddr)

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Meshward-Peer-Identity"))
	}))
	t.Cleanup(app.Close)
	pol := t.TempDir()
	if err := os.WriteFile(filepath.Join(pol, "api.yaml"), []byte(`apiVersion: meshward.dev/v1
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
`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustMeshward(t, "policy", "apply", pol, "--data-dir", m.dataDir)
	token := func(svc string) string {
		return strings.TrimSpace(mustMeshward(t, "token", "create", "--service", svc, "--data-dir", m.dataDir))
	}

	m.apiInbound, m.apiAdmin = freePort(t), freePort(t)
	m.api = start(t, []string{"MESHWARD_TOKEN=" + token("api")}, "proxy", "--service", "api", "--control", ctrlAddr,
		"--inbound", m.apiInbound, "--app", strings.TrimPrefix(app.URL, "http://"), "--admin", m.apiAdmin)
	m.api.waitOutput(t, "policy in force", 20*time.Second)
	m.clientUp = freePort(t)
	start(t, []string{"MESHWARD_TOKEN=" + token("client")}, "proxy", "--service", "client", "--control", ctrlAddr,
		"--upstream", "api="+m.clientUp, "--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)
	m.intruderUp = freePort(t)
	start(t, []string{"MESHWARD_TOKEN=" + token("intruder")}, "proxy", "--service", "intruder", "--control", ctrlAddr,
		"--upstream", "api="+m.intruderUp, "--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)

	id := t.TempDir()
	mustMeshward(t, "identity", "fetch", "--token", token("intruder"), "--control", ctrlAddr, "--out", id)
	cert, err := tls.LoadX509KeyPair(filepath.Join(id, "svid.pem"), filepath.Join(id, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	m.intruderTLS = &tls.Config{ //nolint:gosec // the attacker's client: it does not care who answers
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
	}

	waitStatus(t, "http://"+m.clientUp+"/", 200, 20*time.Second)
	waitStatus(t, "http://"+m.intruderUp+"/", 403, 20*time.Second)
	return m
}

// utf8Raw writes req on a fresh plaintext connection to addr and returns
// the answer's status (0 if none).
func utf8Raw(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// utf8H2 sends one HTTP/2 request with method and path exactly as given
// (hpack carries any bytes) to the api inbound as intruder, and waits for
// its answer.
func utf8H2(t *testing.T, m *utf8MeshT, method, path string) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", m.apiInbound, m.intruderTLS)
	if err != nil {
		t.Fatalf("intruder to api inbound: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "api"}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%q %q over h2: no answer: %v", method, path, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("%q %q over h2: %v, want an answer", method, path, f)
		}
	}
}

// utf8AuditDenies is the detail of every request.deny in the audit trail
// whose actor is actor.
func utf8AuditDenies(t *testing.T, dataDir, actor string) []string {
	t.Helper()
	out := mustMeshward(t, "audit", "--since", "10m", "-o", "json", "--data-dir", dataDir)
	var details []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var e struct{ Action, Actor, Detail string }
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("audit -o json: %v\n%s", err, out)
		}
		if e.Action == "request.deny" && e.Actor == actor {
			details = append(details, e.Detail)
		}
	}
	return details
}

func utf8AnyHasPrefix(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// utf8Metric is the value of an unlabelled metric on a sidecar's admin
// port.
func utf8Metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s on %s", name, admin)
	return 0
}

// utf8Quiet is a sidecar's output without its access log lines, the last
// 30 of them.
func utf8Quiet(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `msg="inbound request"`) {
			keep = append(keep, l)
		}
	}
	return tail(strings.Join(keep, "\n"), 30)
}

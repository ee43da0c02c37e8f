package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/testenv"
)

func TestHTTP1GoClient(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c := &http.Client{Timeout: testTimeout}

	// Keep-alive: several requests, one connection from the app.
	conns := 0
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, m.outURL("/items?x=1"), nil)
		req.Header.Set(PeerIdentityHeader, "spiffe://shop.local/ns/default/sa/admin") // spoof from the app side
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, res.StatusCode, body)
		}
		if got := res.Header.Get("X-App-Peer"); got != frontendID {
			t.Errorf("app saw peer identity %q, want %q (spoofed header must be replaced)", got, frontendID)
		}
		if got := string(body); got != "GET /items body=" {
			t.Errorf("body %q", got)
		}
		conns++
	}
	if got := app.hits.Load(); got != 3 {
		t.Errorf("app hits %d, want 3", got)
	}

	// Chunked request body (unknown length) and chunked response.
	pr, pw := io.Pipe()
	go func() {
		for _, s := range []string{"a", "b", "c"} {
			_, _ = pw.Write([]byte(s))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, m.outURL("/upload?chunked=1"), pr)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := "part0;part1;part2;POST /upload body=abc"; string(body) != want {
		t.Errorf("chunked round trip: body %q, want %q", body, want)
	}
	if got := res.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
		t.Errorf("response transfer encoding %v, want chunked", got)
	}
	if got := counter(t, m.catReg, "meshward_requests_total", map[string]string{"source": frontendID, "decision": "allow", "code": "200"}); got != 4 {
		t.Errorf("meshward_requests_total allow = %v, want 4", got)
	}
}

func TestHTTP1Curl(t *testing.T) {
	curl := testenv.Tool(t, "curl", "curl")
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	// Two URLs in one invocation reuse the connection (keep-alive); the
	// second is a chunked upload.
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "-v",
		"-H", "X-Meshward-Peer-Identity: spiffe://shop.local/ns/default/sa/admin",
		m.outURL("/a"),
		"--next", "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "hello", m.outURL("/b"),
	).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"GET /a body=", "POST /b body=hello", "X-App-Peer: " + frontendID, "Re-using existing"} {
		if !strings.Contains(s, want) {
			t.Errorf("curl output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "sa/admin\r\nX-App") || strings.Contains(s, "X-App-Peer: spiffe://shop.local/ns/default/sa/admin") {
		t.Errorf("spoofed identity reached the app:\n%s", s)
	}

	// The HTTP proxy port: the app addresses the service by name.
	proxyURL := "http://" + m.front.UpstreamAddr("").String()
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "-i", "-x", proxyURL, "http://catalog/by-name").CombinedOutput()
	if err != nil {
		t.Fatalf("curl via proxy port: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "GET /by-name body=") {
		t.Errorf("proxy port response:\n%s", out)
	}
	out, _ = exec.Command(curl, "-sS", "--max-time", "10", "-i", "-x", proxyURL, "http://unknown/x").CombinedOutput()
	if !strings.HasPrefix(string(out), "HTTP/1.1 502") {
		t.Errorf("unknown service via proxy port: want 502, got\n%s", out)
	}
}

func TestH2CFromApp(t *testing.T) {
	app := newEchoApp(t, true, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP2})
	c := h2cClient()
	for range 3 {
		res, body := mustGet(t, c, m.outURL("/h2"))
		if res.ProtoMajor != 2 {
			t.Errorf("app->sidecar proto %s, want HTTP/2", res.Proto)
		}
		if got := res.Header.Get("X-App-Proto"); got != "HTTP/2.0" {
			t.Errorf("sidecar->app proto %q, want HTTP/2.0", got)
		}
		if got := res.Header.Get("X-App-Peer"); got != frontendID {
			t.Errorf("peer %q", got)
		}
		if body != "GET /h2 body=" {
			t.Errorf("body %q", body)
		}
	}
}

func readStatus(t *testing.T, br *bufio.Reader) (int, string) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestReusedRequestsDoNotMix: pipelined requests on one keep-alive
// connection through both sidecars, whose fast loops reuse each request's
// memory for the next: every request reaches the app with its own path,
// fields and body, and a credential sent on one request never shows on
// another.
func TestReusedRequestsDoNotMix(t *testing.T) {
	app := newEchoApp(t, false, map[string]http.Handler{
		"/who/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s|%s|%s|%s|%d", r.URL.Path, r.Header.Get("X-Req"), r.Header.Get("Authorization"),
				body, len(r.Header.Values("X-Extra")))
		}),
	})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c, err := net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(c)
	const n = 60
	want := make([]string, n)
	var batch strings.Builder
	for i := range n {
		var b strings.Builder
		fmt.Fprintf(&b, "X-Req: r%d\r\n", i)
		auth := ""
		if i%3 == 0 { // a credential on every third request only
			auth = fmt.Sprintf("Bearer secret-%d", i)
			fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
		}
		extra := i % 5 // a varying number of fields
		for k := range extra {
			fmt.Fprintf(&b, "X-Extra: %d\r\n", k)
		}
		method, body := "GET", ""
		if i%4 == 1 {
			method, body = "POST", fmt.Sprintf("body-%d", i)
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		fmt.Fprintf(&batch, "%s /who/%d HTTP/1.1\r\nHost: catalog\r\n%s\r\n%s", method, i, b.String(), body)
		want[i] = fmt.Sprintf("/who/%d|r%d|%s|%s|%d", i, i, auth, body, extra)
		if i%10 == 9 { // pipelined in batches of ten
			if _, err := io.WriteString(c, batch.String()); err != nil {
				t.Fatal(err)
			}
			batch.Reset()
			for j := i - 9; j <= i; j++ {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", j, err)
				}
				got, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || string(got) != want[j] {
					t.Errorf("response %d: %d %q, want %q", j, res.StatusCode, got, want[j])
				}
			}
		}
	}
}

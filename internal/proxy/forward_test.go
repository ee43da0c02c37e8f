package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func gauge(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// TestForwarderKeepAlive: serial HTTP/1.1 requests (GET, POST with a body,
// HEAD) reuse one mTLS connection between the sidecars and one connection
// to the app, and arrive intact.
func TestForwarderKeepAlive(t *testing.T) {
	var mu sync.Mutex
	remotes := map[string]bool{}
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes[r.RemoteAddr] = true
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-App-Path", r.URL.EscapedPath())
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" body="+string(body))
	})
	app := newEchoApp(t, false, map[string]http.Handler{"/k": rec, "/p": rec, "/h": rec})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c := &http.Client{Timeout: testTimeout}
	for i := range 10 {
		res, body := mustGet(t, c, m.outURL("/k?i=1"))
		if res.StatusCode != http.StatusOK || body != "GET /k body=" {
			t.Fatalf("GET %d: %d %q", i, res.StatusCode, body)
		}
	}
	res, err := c.Post(m.outURL("/p"), "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "POST /p body=payload" {
		t.Errorf("POST body %q", b)
	}
	res, err = c.Head(m.outURL("/h"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-App-Path") != "/h" {
		t.Errorf("HEAD: %d %v", res.StatusCode, res.Header)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := len(remotes); got != 1 {
		t.Errorf("app connections %d, want 1 (keep-alive)", got)
	}
	if got := gauge(t, m.catReg, "meshward_active_connections", "listener", "inbound"); got != 1 {
		t.Errorf("inbound mTLS connections %v, want 1 (keep-alive)", got)
	}
}

// TestForwarderHopHeaders: hop-by-hop headers, and the ones Connection
// names, do not cross the mesh; end-to-end headers do.
func TestForwarderHopHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	app := newEchoApp(t, false, map[string]http.Handler{"/hdr": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("X-Resp-End", "1")
	})})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	req, _ := http.NewRequest(http.MethodGet, m.outURL("/hdr"), nil)
	req.Header.Set("Connection", "keep-alive, X-Secret-Hop")
	req.Header.Set("X-Secret-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("X-End", "kept")
	res, err := (&http.Client{Timeout: testTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h := <-got
	for _, k := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := h.Get(k); v != "" {
			t.Errorf("app saw hop-by-hop %s: %q", k, v)
		}
	}
	if h.Get("X-End") != "kept" || h.Get(PeerIdentityHeader) != frontendID {
		t.Errorf("app headers %v", h)
	}
	if res.Header.Get("X-Resp-Hop") != "" || res.Header.Get("X-Resp-End") != "1" {
		t.Errorf("response headers %v", res.Header)
	}
}

// rawApp answers every request on a connection with resp, then closes the
// connection when closeAfter is set.
func rawApp(t *testing.T, resp string, closeAfter bool) (addr string, conns *atomic.Int64) {
	return rawAppThen(t, resp, func(net.Conn) bool { return !closeAfter })
}

// rawAppThen answers every request on a connection with resp, then runs
// after, which says whether to go on with the connection.
func rawAppThen(t *testing.T, resp string, after func(c net.Conn) bool) (addr string, conns *atomic.Int64) {
	return serveTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, resp); err != nil || !after(c) {
				return
			}
		}
	})
}

// TestForwarderStaleConnection: an app that closes every connection after
// one response without saying so: requests with and without a body still
// succeed on fresh connections.
func TestForwarderStaleConnection(t *testing.T) {
	// The app closes each connection right after its response and says so
	// on closed; the test sends the next request only then. (A request
	// that meets the connection between the response and the close is a
	// race no client can win for a POST: it is not replayed.)
	closed := make(chan struct{}, 16)
	addr, conns := serveTCP(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		_ = c.Close()
		closed <- struct{}{}
	})
	waitClosed := func() {
		t.Helper()
		select {
		case <-closed:
		case <-time.After(testTimeout):
			t.Fatal("the app did not close its connection")
		}
	}
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolHTTP})
	c := &http.Client{Timeout: testTimeout}
	for i := range 3 {
		res, body := mustGet(t, c, m.outURL("/s"))
		if res.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET %d: %d %q", i, res.StatusCode, body)
		}
		waitClosed()
		res, err := c.Post(m.outURL("/s"), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST %d: %d", i, res.StatusCode)
		}
		waitClosed()
	}
	if got := conns.Load(); got != 6 {
		t.Errorf("app connections %d, want 6", got)
	}
}

// TestForwarderStrayBytesOnIdleConnection: an app that writes bytes on an
// idle keep-alive connection (after the response, before the next
// request). The forwarder waits for the next response without a first
// empty read (sendThenAwait); the stray bytes must not make it miss that
// response or hang: the next request fails over to a fresh connection.
func TestForwarderStrayBytesOnIdleConnection(t *testing.T) {
	addr, conns := rawAppThen(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", func(c net.Conn) bool {
		time.Sleep(50 * time.Millisecond) // the sidecar has read the response by now
		_, err := io.WriteString(c, "STRAY")
		return err == nil
	})
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolHTTP, timeouts: Timeouts{ResponseHeader: 30 * time.Second}})
	c := &http.Client{Timeout: testTimeout}
	for i := range 3 {
		start := time.Now()
		res, body := mustGet(t, c, m.outURL("/s"))
		if res.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET %d: %d %q", i, res.StatusCode, body)
		}
		// Far below the 30s response-header timeout: nothing waited for it.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("GET %d took %v", i, d)
		}
		time.Sleep(150 * time.Millisecond) // let the stray bytes arrive on the idle connection
	}
	if got := conns.Load(); got < 2 {
		t.Errorf("app connections %d: the connection with stray bytes was reused", got)
	}
}

// TestForwarderResponseHeadLimit: an app that sends an endless response
// head gets the caller a 502 once 1 MiB has come, not a sidecar that keeps
// reading.
func TestForwarderResponseHeadLimit(t *testing.T) {
	addr, _ := serveTCP(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Endless: " + strings.Repeat("a", 1000) + "\r\n"
		for range 3000 { // 3 MB, bounded
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolHTTP})
	res, _ := mustGet(t, &http.Client{Timeout: testTimeout}, m.outURL("/endless"))
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.StatusCode)
	}
}

// TestForwarderNoReplayOfNonIdempotent: a POST whose reused connection the
// app closed after reading it (the app may have acted on it) is not sent
// again; a GET in the same situation is.
func TestForwarderNoReplayOfNonIdempotent(t *testing.T) {
	var posts, gets atomic.Int64
	addr, _ := serveTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.Method {
			case http.MethodPost:
				posts.Add(1)
			case http.MethodGet:
				gets.Add(1)
			}
			if i == 1 {
				return // read the second request, then close without an answer
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolHTTP})
	c := &http.Client{Timeout: testTimeout}
	mustGet(t, c, m.outURL("/first")) // opens the app connection
	res, err := c.Post(m.outURL("/pay"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || posts.Load() != 1 {
		t.Errorf("POST: status %d, app saw %d POSTs; want 502 and 1", res.StatusCode, posts.Load())
	}
	mustGet(t, c, m.outURL("/second")) // a new app connection
	res, body := mustGet(t, c, m.outURL("/third"))
	if res.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("GET after a silent close: %d %q, want a retried 200", res.StatusCode, body)
	}
}

// TestForwarderClientGoneWhileStreaming: a client that leaves during a
// streamed response (server-sent events from an app that then stays
// silent) is noticed by both sidecars, which close the app's connection;
// nothing waits for the app's next byte.
func TestForwarderClientGoneWhileStreaming(t *testing.T) {
	appDone := make(chan struct{})
	app := newEchoApp(t, false, map[string]http.Handler{"/events": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done(): // the inbound sidecar closed the connection
			close(appDone)
		case <-time.After(testTimeout):
		}
	})})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c, err := net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	_, _ = io.WriteString(c, "GET /events HTTP/1.1\r\nHost: catalog\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	c.Close()
	select {
	case <-appDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the app's request was not cancelled after the client left")
	}
}

// TestForwarderStalledRequestBody: a caller whose body stalls is answered
// 400 (its fault), not 504 as if the upstream had failed.
func TestForwarderStalledRequestBody(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, timeouts: Timeouts{ReadHeader: 200 * time.Millisecond}})
	if code, body := m.outboundRaw(t, "POST /x HTTP/1.1\r\nHost: catalog\r\nContent-Length: 100\r\n\r\n0123456789"); code != http.StatusBadRequest {
		t.Errorf("status %d %q, want 400", code, body)
	}
	if seen := app.seen(); len(seen) != 0 {
		t.Errorf("app received %v", seen)
	}
}

// TestForwarderTruncatedBody: a response cut short by the app reaches the
// client as an error (a 502, or a body that fails), never as a complete
// shorter body.
func TestForwarderTruncatedBody(t *testing.T) {
	addr, _ := rawApp(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", true)
	m := newMesh(t, meshOpts{appAddr: addr, appProto: ProtocolHTTP})
	res, err := (&http.Client{Timeout: testTimeout}).Get(m.outURL("/t"))
	if err != nil {
		return // refused outright: fine
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); err == nil && res.StatusCode == http.StatusOK {
		t.Errorf("truncated response read cleanly: %d %q", res.StatusCode, b)
	}
}

// TestForwarderPoolFullUsesHTTP2: when every pooled http/1.1 connection to
// the endpoint is busy, a request goes over HTTP/2 instead of waiting.
func TestForwarderPoolFullUsesHTTP2(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	app := newEchoApp(t, false, map[string]http.Handler{"/slow": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "slow")
	})})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	pool := (*m.front.upstreams.Load())["catalog"].pool
	pool.mu.Lock()
	pool.maxActive = 1
	pool.mu.Unlock()
	c := &http.Client{Timeout: testTimeout}
	slow := make(chan string, 1)
	go func() {
		res, err := c.Get(m.outURL("/slow"))
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- string(b)
	}()
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("slow request never reached the app")
	}
	res, body := mustGet(t, c, m.outURL("/fast"))
	close(release)
	if res.StatusCode != http.StatusOK || body != "GET /fast body=" {
		t.Errorf("request with a full pool: %d %q", res.StatusCode, body)
	}
	if got := <-slow; got != "slow" {
		t.Errorf("slow request: %q", got)
	}
	if got := gauge(t, m.catReg, "meshward_active_connections", "listener", "inbound"); got != 2 {
		t.Errorf("inbound connections %v, want 2 (one http/1.1, one h2)", got)
	}
}

// TestForwarderResponseHeaderTimeout: an app that never answers gets the
// caller a 504 from the outbound sidecar.
func TestForwarderResponseHeaderTimeout(t *testing.T) {
	app := newEchoApp(t, false, map[string]http.Handler{"/hang": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, timeouts: Timeouts{ResponseHeader: 200 * time.Millisecond}})
	res, _ := mustGet(t, &http.Client{Timeout: testTimeout}, m.outURL("/hang"))
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", res.StatusCode)
	}
	// The inbound sidecar bounds its wait for the app by itself: its HTTP/1.1
	// loop would not notice a caller that gave up.
	if code, body := m.inboundRaw(t, "GET /hang HTTP/1.1\r\nHost: catalog\r\n\r\n"); code != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer in time") {
		t.Errorf("inbound: %d %q, want 504", code, body)
	}
}

func TestH1Eligible(t *testing.T) {
	t.Parallel()
	req := func(method, target string, cl int64, h http.Header, major int) *http.Request {
		r, _ := http.NewRequest(method, target, nil)
		r.ContentLength, r.ProtoMajor = cl, major
		if h != nil {
			r.Header = h
		}
		return r
	}
	tests := []struct {
		name string
		in   *http.Request
		want bool
	}{
		{"get", req(http.MethodGet, "http://c/x", 0, nil, 1), true},
		{"small post", req(http.MethodPost, "http://c/x", maxFastBody, nil, 1), true},
		{"h2 get (inbound)", req(http.MethodGet, "http://c/x", 0, nil, 2), true},
		{"chunked body", req(http.MethodPost, "http://c/x", -1, nil, 1), false},
		{"large body", req(http.MethodPost, "http://c/x", maxFastBody+1, nil, 1), false},
		{"upgrade", req(http.MethodGet, "http://c/x", 0, http.Header{"Upgrade": {"websocket"}}, 1), false},
		{"connect", req(http.MethodConnect, "http://c:443", 0, nil, 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := h1Eligible(tc.in); got != tc.want {
				t.Errorf("h1Eligible = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRemoveHopHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Connection":          {"keep-alive, X-Hop", "x-other"},
		"X-Hop":               {"1"},
		"X-Other":             {"2"},
		"Keep-Alive":          {"timeout=5"},
		"Te":                  {"trailers"},
		"Transfer-Encoding":   {"chunked"},
		"Proxy-Authorization": {"secret"},
		"Upgrade":             {"h2c"},
		"X-End":               {"kept"},
		"Content-Type":        {"text/plain"},
	}
	removeHopHeaders(h)
	want := http.Header{"X-End": {"kept"}, "Content-Type": {"text/plain"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("removeHopHeaders (-want +got):\n%s", diff)
	}
}

// TestWriteRequestRefusesLineBreaks: a header value carrying CR or LF (which
// net/http's parser never produces, but a value meshward sets could) is
// refused rather than written, so it cannot split the request.
func TestWriteRequestRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		host    string
		header  http.Header
		wantErr bool
		want    string
	}{
		{"clean", "catalog", http.Header{"X-A": {"1"}}, false,
			"GET /p?q=1 HTTP/1.1\r\nHost: catalog\r\nX-A: 1\r\n\r\n"},
		{"lf in value", "catalog", http.Header{"X-A": {"1\nX-Injected: 1"}}, true, ""},
		{"cr in key", "catalog", http.Header{"X-A\r": {"1"}}, true, ""},
		{"crlf in host", "catalog\r\nX-Injected: 1", nil, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://catalog/p?q=1", nil)
			r.Header = tc.header
			var out strings.Builder
			c := &h1Conn{bw: bufio.NewWriter(&out)}
			err := writeRequest(c, r, tc.host, make([]byte, 64))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr {
				if diff := cmp.Diff(tc.want, out.String()); diff != "" {
					t.Errorf("wire (-want +got):\n%s", diff)
				}
			} else if strings.Contains(out.String(), "X-Injected") && c.bw.Buffered() == 0 {
				t.Errorf("injected header flushed: %q", out.String())
			}
		})
	}
}

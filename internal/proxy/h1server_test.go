package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"meshward.dev/meshward/internal/observe"
)

// h1Harness runs the fast HTTP/1.1 loop on a loopback listener, with a
// net/http server behind it for what it hands off, as the sidecar does.
type h1Harness struct {
	addr string
	s    *h1Server

	mu     sync.Mutex
	limits []string
	paths  []string // "fast GET /x" or "nethttp GET /x", in arrival order
}

func startH1(t *testing.T, h http.HandlerFunc, to Timeouts, lim Limits, allowH2C bool) *h1Harness {
	t.Helper()
	to.setDefaults()
	lim.setDefaults()
	hh := &h1Harness{}
	onLimit := func(l string) { hh.mu.Lock(); hh.limits = append(hh.limits, l); hh.mu.Unlock() }
	record := func(w http.ResponseWriter, r *http.Request) {
		via := "fast"
		if r.Context().Value(http.ServerContextKey) != nil {
			via = "nethttp"
		}
		hh.mu.Lock()
		hh.paths = append(hh.paths, via+" "+r.Method+" "+r.URL.Path)
		hh.mu.Unlock()
		h(w, r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hand := newChanListener(ln.Addr())
	hh.s = newH1Server(record, hand, to, lim, allowH2C, onLimit, observe.Discard())
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(allowH2C)
	srv := &http.Server{Handler: http.HandlerFunc(record), Protocols: protos, MaxHeaderBytes: lim.MaxHeaderBytes, ConnState: trackLimits}
	go func() { _ = srv.Serve(hand) }()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g := newGuardConn(c, nil, nil)
			g.onLimit = onLimit
			wg.Go(func() { hh.s.serve(context.Background(), g) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		hh.s.shutdown(ctx)
		cancel()
		_ = srv.Close()
		wg.Wait()
	})
	hh.addr = ln.Addr().String()
	return hh
}

func (hh *h1Harness) seen() []string {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	return append([]string(nil), hh.paths...)
}

func (hh *h1Harness) limitHits() []string {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	return append([]string(nil), hh.limits...)
}

func (hh *h1Harness) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", hh.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return c, bufio.NewReader(c)
}

// testHandler answers by path.
func testHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.Path, b)
	case "/stream":
		w.Header().Set(http.TrailerPrefix+"X-Sum", "42")
		for i := range 3 {
			_, _ = fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
	case "/len":
		w.Header().Set("Content-Length", "10")
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte("0123456789"))
		}
	case "/deny": // does not read the body
		http.Error(w, "no", http.StatusForbidden)
	case "/empty":
		w.WriteHeader(http.StatusNoContent)
	case "/trailer": // short body, no flush: still chunked so the trailer can go
		w.Header().Set(http.TrailerPrefix+"X-Sum", "7")
		_, _ = w.Write([]byte("short"))
	case "/big":
		_, _ = w.Write(bytes.Repeat([]byte("x"), 5000))
	case "/abort":
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("abc"))
		panic(http.ErrAbortHandler)
	default:
		_, _ = fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}
}

func mustRead(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && res.StatusCode/100 == 1 { // 100 Continue
		res, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// TestH1ServerKeepAliveAndFraming: one connection carries every kind of
// fast request, each framed as net/http would.
func TestH1ServerKeepAliveAndFraming(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	send := func(s string) { t.Helper(); _, _ = io.WriteString(c, s) }

	send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := mustRead(t, br, "GET")
	if res.StatusCode != 200 || body != "GET /hello" || res.ContentLength != int64(len(body)) || res.Header.Get("Date") == "" {
		t.Errorf("small body: %d %q cl=%d te=%v date=%q", res.StatusCode, body, res.ContentLength, res.TransferEncoding, res.Header.Get("Date"))
	}

	send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
	if res, body = mustRead(t, br, "POST"); body != "POST /echo body=abc" {
		t.Errorf("echo: %d %q", res.StatusCode, body)
	}

	send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body = mustRead(t, br, "GET")
	if body != "part0;part1;part2;" || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" || res.Trailer.Get("X-Sum") != "42" {
		t.Errorf("stream: %q te=%v trailer=%v", body, res.TransferEncoding, res.Trailer)
	}

	send("HEAD /len HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, body = mustRead(t, br, "HEAD"); res.ContentLength != 10 || body != "" {
		t.Errorf("HEAD: cl=%d body=%q", res.ContentLength, body)
	}

	send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, body = mustRead(t, br, "GET"); len(body) != 5000 || len(res.TransferEncoding) != 1 {
		t.Errorf("big: %d bytes te=%v", len(body), res.TransferEncoding)
	}

	// A refused request with a body the handler never read: the body is
	// skipped and the next request still parses.
	send("POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 21\r\n\r\nGET /smuggled HTTP/1.")
	if res, _ = mustRead(t, br, "POST"); res.StatusCode != http.StatusForbidden {
		t.Errorf("deny: %d", res.StatusCode)
	}

	send("GET /empty HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, body = mustRead(t, br, "GET"); res.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("204: %d %q", res.StatusCode, body)
	}

	send("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if res, body = mustRead(t, br, "GET"); body != "GET /last" || !res.Close {
		t.Errorf("close: %q close=%v", body, res.Close)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("after Connection: close: %q", rest)
	}
	want := []string{"fast GET /hello", "fast POST /echo", "fast GET /stream", "fast HEAD /len", "fast GET /big",
		"fast POST /deny", "fast GET /empty", "fast GET /last"}
	if got := hh.seen(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("handled %v, want %v", got, want)
	}
}

// TestH1ServerPipelined: requests sent back to back are answered in order.
func TestH1ServerPipelined(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"GET /1", "POST /echo body=hi", "GET /3"} {
		if _, body := mustRead(t, br, "GET"); body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	}
}

// TestH1ServerTrailingCRLF: the CRLF some clients send after a body is
// skipped, and the connection then waits as an idle one (the read-header
// timeout, 100ms here, does not cut it).
func TestH1ServerTrailingCRLF(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{ReadHeader: 100 * time.Millisecond}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n")
	if _, body := mustRead(t, br, "POST"); body != "POST /echo body=hi" {
		t.Fatalf("first: %q", body)
	}
	time.Sleep(300 * time.Millisecond)
	_, _ = io.WriteString(c, "GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := mustRead(t, br, "GET"); body != "GET /again" {
		t.Errorf("after the idle wait: %q", body)
	}
	if hits := hh.limitHits(); len(hits) != 0 {
		t.Errorf("limits counted: %v", hits)
	}
}

// TestH1ServerTrailerShortBody: a trailer forces chunked framing even
// when the body is short enough for a computed Content-Length.
func TestH1ServerTrailerShortBody(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET /trailer HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := mustRead(t, br, "GET")
	if body != "short" || len(res.TransferEncoding) != 1 || res.Trailer.Get("X-Sum") != "7" {
		t.Errorf("body %q te=%v trailer=%v", body, res.TransferEncoding, res.Trailer)
	}
}

// TestH1ServerTooManyEmptyLines: more than 4 stray CR/LF bytes before a
// request are malformed (400), and they do not keep re-arming the wait.
func TestH1ServerTooManyEmptyLines(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	for range 3 {
		_, _ = io.WriteString(c, "\r\n")
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("response %v, err %v; want 400", res, err)
	}
	if seen := hh.seen(); len(seen) != 0 {
		t.Errorf("handler reached by %v", seen)
	}
}

// TestH1ServerHTTP10: HTTP/1.0 closes unless the client asked for keep-alive.
func TestH1ServerHTTP10(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET /a HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
	res, body := mustRead(t, br, "GET")
	if body != "GET /a" || res.Close || res.Header.Get("Connection") != "keep-alive" {
		t.Errorf("1.0 keep-alive: %q close=%v conn=%q", body, res.Close, res.Header.Get("Connection"))
	}
	_, _ = io.WriteString(c, "GET /stream HTTP/1.0\r\nHost: a\r\n\r\n")
	res, body = mustRead(t, br, "GET") // no chunking for 1.0: the body ends at close
	if body != "part0;part1;part2;" || len(res.TransferEncoding) != 0 {
		t.Errorf("1.0 stream: %q te=%v", body, res.TransferEncoding)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("connection not closed after HTTP/1.0: %v", err)
	}
}

// TestH1ServerHandsOff: what the loop does not take reaches net/http's
// server with every byte, on the same connection.
func TestH1ServerHandsOff(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, true)
	cases := []struct{ name, req, want string }{
		{"chunked body", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /echo body=abc"},
		{"expect", "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", "POST /echo body=hi"},
		{"large body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("z", 70000), "POST /echo body=" + strings.Repeat("z", 70000)},
		{"absolute form", "GET http://a/abs HTTP/1.1\r\nHost: a\r\n\r\n", "GET /abs"},
		{"obs-fold", "GET /fold HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", "GET /fold"},
		{"HTTP/1.2", "GET /v12 HTTP/1.2\r\nHost: a\r\n\r\n", "GET /v12"},
		{"big head", "GET /bighead HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n", "GET /bighead"},
	}
	for _, tc := range cases {
		c, br := hh.dial(t)
		// First a fast request, then the one to hand off, then another:
		// the hand-off keeps the connection and its order.
		_, _ = io.WriteString(c, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := mustRead(t, br, "GET"); body != "GET /before" {
			t.Fatalf("%s: before: %q", tc.name, body)
		}
		_, _ = io.WriteString(c, tc.req+"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, body := mustRead(t, br, "GET"); body != tc.want {
			t.Errorf("%s: %d %q", tc.name, res.StatusCode, body)
		}
		if _, body := mustRead(t, br, "GET"); body != "GET /after" {
			t.Errorf("%s: after: %q", tc.name, body)
		}
	}
	got := strings.Join(hh.seen(), ",")
	for _, want := range []string{"nethttp POST /echo", "nethttp GET /abs", "nethttp GET /bighead", "nethttp GET /fold", "nethttp GET /v12", "fast GET /before"} {
		if !strings.Contains(got, want) {
			t.Errorf("handled %s; missing %q", got, want)
		}
	}
	// h2c prior knowledge on a plaintext listener.
	res, body := mustGet(t, h2cClient(), "http://"+hh.addr+"/h2c")
	if res.ProtoMajor != 2 || body != "GET /h2c" {
		t.Errorf("h2c: proto %d %q", res.ProtoMajor, body)
	}
}

// TestH1ServerRefuses: malformed requests get 400 and a closed connection,
// and never reach the handler.
func TestH1ServerRefuses(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	bad := []string{
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",                 // space before the colon
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",                     // same, on the fast path's own field
		"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n",                               // control character in a value
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",                                              // malformed Host
		"GET / HTTP/1.1\r\n\r\n",                                                           // no Host
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                                     // two Hosts
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",                      // signed length
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", // two lengths
		"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",                                             // space in the target
	}
	for i, req := range bad {
		c, br := hh.dial(t)
		_, _ = io.WriteString(c, req)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Errorf("case %d: %v", i, err)
			continue
		}
		if res.StatusCode/100 != 4 && res.StatusCode != http.StatusHTTPVersionNotSupported {
			t.Errorf("case %d %q: status %d", i, req, res.StatusCode)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Errorf("case %d: connection not closed: %q %v", i, rest, err)
		}
	}
	if seen := hh.seen(); len(seen) != 0 {
		t.Errorf("handler reached by %v", seen)
	}
}

// TestH1ServerLimits: a head over MaxHeaderBytes gets 431 even when it fits
// the loop's buffer, and a slow head is cut at the read-header timeout;
// both are counted.
func TestH1ServerLimits(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{ReadHeader: 100 * time.Millisecond}, Limits{MaxHeaderBytes: 1024}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("b", 6000)+"\r\n\r\n")
	if res, _ := mustRead(t, br, "GET"); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", res.StatusCode)
	}
	c, br = hh.dial(t)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("slow head: %q %v", rest, err)
	}
	waitFor(t, func() bool { return len(hh.limitHits()) == 2 })
	if got := strings.Join(hh.limitHits(), ","); !strings.Contains(got, limitHeaderBytes) || !strings.Contains(got, limitReadHeader) {
		t.Errorf("limits counted: %s", got)
	}
	if seen := hh.seen(); len(seen) != 0 {
		t.Errorf("handler reached by %v", seen)
	}
}

// TestH1ServerSlowBodyOnKeepAlive: on a connection that already served a
// request, a body that stops coming is cut at the read-header timeout too,
// not held for the idle timeout.
func TestH1ServerSlowBodyOnKeepAlive(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{ReadHeader: 100 * time.Millisecond}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	mustRead(t, br, "GET")
	start := time.Now()
	_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
	_, _ = io.ReadAll(br) // whatever the handler answered, then the close
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("connection held %v for a stalled body; the read-header timeout is 100ms", d)
	}
}

// TestH1ServerAbort: a handler that aborts leaves a short body and a
// closed connection, never a response that looks whole.
func TestH1ServerAbort(t *testing.T) {
	hh := startH1(t, testHandler, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	_, _ = io.WriteString(c, "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != "abc" {
		t.Errorf("body %q err %v, want abc and unexpected EOF", b, err)
	}
}

// TestH1ServerShutdown: idle connections close at once; an active request
// finishes with Connection: close.
func TestH1ServerShutdown(t *testing.T) {
	release := make(chan struct{})
	hh := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		testHandler(w, r)
	}, Timeouts{}, Limits{}, false)
	idle, ibr := hh.dial(t)
	_, _ = io.WriteString(idle, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	mustRead(t, ibr, "GET")
	busy, bbr := hh.dial(t)
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, func() bool { return len(hh.seen()) == 2 })

	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		hh.s.shutdown(ctx)
		close(done)
	}()
	if _, err := ibr.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	close(release)
	res, body := mustRead(t, bbr, "GET")
	if body != "GET /slow" || !res.Close {
		t.Errorf("in-flight: %q close=%v", body, res.Close)
	}
	<-done
}

// FuzzFastHead: whatever the classifier lets through, once parsed by the
// standard library, has the framing the fast loop relies on.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
		"GET / HTTP/1.0\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0065536\r\n\r\n",
		"GET / HTTP/1.1\r\nhOsT: a\r\ncontent-LENGTH: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data, 0)
		if end < 0 {
			return
		}
		bodyLen, fast := fastHead(data[:end], true)
		if !fast {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return // the loop answers 400
		}
		if len(req.TransferEncoding) > 0 || req.ContentLength < 0 || req.ContentLength > maxFastBody ||
			req.Header["Upgrade"] != nil || req.Header["Expect"] != nil || req.ProtoMajor != 1 || req.Method == http.MethodConnect {
			t.Fatalf("classifier let through %q: te=%v cl=%d", data[:end], req.TransferEncoding, req.ContentLength)
		}
		if int64(bodyLen) != req.ContentLength {
			t.Fatalf("classifier body length %d, ReadRequest %d for %q", bodyLen, req.ContentLength, data[:end])
		}
	})
}

// TestH1ServerBodyOutlivesHandler: a handler that hands the request body
// to a goroutine and returns (as the HTTP/2 transport does with a body it
// is still writing) neither races the loop for the connection's reader
// nor ever reads the next request's bytes: the loop waits out a read in
// flight, skips the rest of the body, and later reads fail.
func TestH1ServerBodyOutlivesHandler(t *testing.T) {
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 2)
	release := make(chan struct{})
	hh := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/now": // reads at once, racing the loop's skip
			go func() {
				b, err := io.ReadAll(r.Body)
				results <- result{string(b), err}
			}()
		case "/later": // reads after the loop has moved on
			go func() {
				<-release
				b, err := io.ReadAll(r.Body)
				results <- result{string(b), err}
			}()
		}
		w.WriteHeader(http.StatusAccepted)
	}, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	for _, path := range []string{"/now", "/later"} {
		_, _ = io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
		if res, _ := mustRead(t, br, "POST"); res.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: status %d", path, res.StatusCode)
		}
		_, _ = io.WriteString(c, "56789GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := mustRead(t, br, "GET"); res.StatusCode != http.StatusAccepted {
			t.Fatalf("the request after %s: status %d", path, res.StatusCode)
		}
	}
	close(release)
	for range 2 {
		r := <-results
		if !strings.HasPrefix("0123456789", r.body) || (r.err != nil && !errors.Is(r.err, http.ErrBodyReadAfterClose)) {
			t.Errorf("the late reader got %q, %v: more than its own body, or another error", r.body, r.err)
		}
	}
	if got := hh.seen(); len(got) != 4 || got[1] != "fast GET /next" || got[3] != "fast GET /next" {
		t.Errorf("requests seen: %q", got)
	}
}

// TestH1ServerReusesRequest: the loop reuses a request's memory for the
// connection's next request only when the forwarder alone carried it
// (requestDone with the loop's own context); a request a handler keeps,
// or marks through a derived context, is never written over.
func TestH1ServerReusesRequest(t *testing.T) {
	type seen struct {
		r    *http.Request
		x    string
		path string
	}
	var mu sync.Mutex
	var got []seen
	type key struct{}
	shared := http.Header{"Shared": {"yes"}}
	hh := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r, r.Header.Get("X-A"), r.URL.Path})
		mu.Unlock()
		switch r.URL.Path {
		case "/done":
			requestDone(r)
		case "/derived":
			requestDone(r.WithContext(context.WithValue(r.Context(), key{}, 1)))
		case "/clone": // same context, another request
			requestDone(r.Clone(r.Context()))
		case "/big": // as hop-by-hop removal leaves a map with many fields named in Connection
			clear(r.Header)
			requestDone(r)
		case "/swap": // a handler that replaces the map: the shared one is not the loop's
			r.Header = shared
			requestDone(r)
		}
		w.WriteHeader(http.StatusNoContent)
	}, Timeouts{}, Limits{}, false)
	c, br := hh.dial(t)
	paths := []string{"/done", "/done", "/keep", "/done", "/derived", "/done", "/clone", "/big", "/done", "/swap", "/done"}
	reuses := map[string]bool{"/done": true, "/swap": true}
	for i, path := range paths {
		extra := ""
		if path == "/big" {
			for k := range maxSpareFields {
				extra += fmt.Sprintf("X-Big-%d: v\r\n", k)
			}
		}
		_, _ = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\nX-A: %d\r\n%s\r\n", path, i, extra)
		if res, _ := mustRead(t, br, "GET"); res.StatusCode != http.StatusNoContent {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(paths) {
		t.Fatalf("handler saw %d requests", len(got))
	}
	for i := 1; i < len(got); i++ {
		reused := got[i].r == got[i-1].r
		if want := reuses[paths[i-1]]; reused != want {
			t.Errorf("request %d (after %s): reused %v, want %v", i, paths[i-1], reused, want)
		}
	}
	if shared.Get("Shared") != "yes" {
		t.Errorf("the loop cleared a header map a handler put in place: %v", shared)
	}
	// What the handler kept is as it was when it kept it.
	keep := got[2]
	if keep.r.URL.Path != "/keep" || keep.r.Header.Get("X-A") != "2" {
		t.Errorf("the kept request changed: %s X-A=%q", keep.r.URL.Path, keep.r.Header.Get("X-A"))
	}
}

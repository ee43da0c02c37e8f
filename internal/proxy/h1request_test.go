package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// requestSeeds are heads both parsers see: the common shapes and the
// corners where they must agree or parseRequest must decline.
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /api/products?limit=5&sort=name HTTP/1.1\r\nHost: catalog:8080\r\nUser-Agent: fortio.org/fortio-1.66.5\r\nAccept: */*\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc",
	"GET / HTTP/1.0\nHost: a\n\n",
	"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nhOsT: a\r\ncontent-LENGTH: 1\r\nx-a: 1\r\nX-A: 2\r\nx-b:\r\n\r\nx",
	"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //x/../y;p=1 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a!b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /?q=%zz#f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \t v \t\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\nJ: 10\r\nK: 11\r\nL: 12\r\nA: 13\r\n\r\n",
}

// FuzzParseRequest: whatever parseRequest accepts, http.ReadRequest parses
// to the same request (method, target, URL, version, fields, Host,
// keep-alive, body) and the fast loop's own checks (checkFastRequest)
// pass; what it declines still goes to http.ReadRequest, so declining is
// always safe.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	tmpl := (&http.Request{}).WithContext(context.Background())
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data, 0)
		if end < 0 {
			return
		}
		bodyLen, fast := fastHead(data[:end], false)
		if !fast {
			return
		}
		br := bufio.NewReader(bytes.NewReader(data))
		head, err := peekHead(br, 8<<10)
		if err != nil {
			return
		}
		// Half the inputs reuse a block an earlier request filled (as the
		// loop does): nothing of that request may show.
		var spare *fastRequest
		if len(data)%2 == 0 {
			spare = dirtyRequest(t, tmpl)
		}
		fr, ok := parseRequest(tmpl, head, bodyLen, br, spare)
		if !ok {
			return
		}
		got := &fr.req
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("parseRequest took what http.ReadRequest refuses (%v): %q", err, data[:end])
		}
		if msg := checkFastRequest(got); msg != "" {
			t.Fatalf("parseRequest took what the loop refuses (%s): %q", msg, data[:end])
		}
		sameRequest(t, got, want, data[:end])
		_, _ = br.Discard(len(head))
		gotBody, gerr := io.ReadAll(got.Body)
		wantBody, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gotBody, wantBody) || (gerr == nil) != (werr == nil) {
			t.Fatalf("body %q (%v), ReadRequest %q (%v) for %q", gotBody, gerr, wantBody, werr, data)
		}
	})
}

// dirtyRequest is a block as the loop would hand back for reuse: filled
// by another request, then changed the way handlers change one.
func dirtyRequest(t *testing.T, tmpl *http.Request) *fastRequest {
	t.Helper()
	var b strings.Builder
	b.WriteString("POST /old/path?x=1 HTTP/1.1\r\nHost: old.example\r\nContent-Length: 3\r\n")
	for i := range maxSpareFields { // more fields than a kept block may have had
		fmt.Fprintf(&b, "X-Old-%d: v%d\r\n", i, i)
	}
	b.WriteString("\r\nabc")
	data := []byte(b.String())
	end := headEnd(data, 0)
	fr, ok := parseRequest(tmpl, data[:end], 3, bufio.NewReader(bytes.NewReader(data[end:])), nil)
	if !ok {
		t.Fatal("dirtyRequest: not parsed")
	}
	r := &fr.req
	r.Header.Set(PeerIdentityHeader, "spiffe://old.example/ns/a/sa/b")
	r.URL.RawPath, r.RemoteAddr, r.Form = "/old%2Fpath", "192.0.2.1:1", url.Values{"a": {"b"}}
	_, _ = io.ReadAll(r.Body)
	fr.body.finish(true)
	return fr
}

// TestFastRequestRecycle: a block given back keeps nothing of its request
// (not even while the connection idles), only an empty header map, and a
// block whose head had too many fields is not given back.
func TestFastRequestRecycle(t *testing.T) {
	tmpl := (&http.Request{}).WithContext(context.Background())
	if fr := dirtyRequest(t, tmpl); fr.recycle() {
		t.Fatal("a block of a head with more than maxSpareFields fields was kept")
	}
	data := []byte("GET /a?b HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer secret\r\n\r\n")
	fr, ok := parseRequest(tmpl, data, 0, bufio.NewReader(bytes.NewReader(nil)), nil)
	if !ok {
		t.Fatal("not parsed")
	}
	h := fr.hdr
	if !fr.recycle() {
		t.Fatal("a small block was not kept")
	}
	if !reflect.DeepEqual(fr, &fastRequest{hdr: h}) || len(h) != 0 {
		t.Errorf("the kept block still holds its request: %+v", fr)
	}
}

func sameRequest(t *testing.T, got, want *http.Request, head []byte) {
	t.Helper()
	if got.RemoteAddr != "" || got.Form != nil || got.PostForm != nil {
		t.Fatalf("parseRequest(%q) left fields of another request: %q %v %v", head, got.RemoteAddr, got.Form, got.PostForm)
	}
	type view struct {
		Method, RequestURI, Proto, Host string
		Major, Minor                    int
		URL                             string
		Path, RawPath, RawQuery         string
		ForceQuery                      bool
		Close                           bool
		ContentLength                   int64
		NoBody                          bool
		Header                          http.Header
		TE, Trailer                     any
	}
	v := func(r *http.Request) view {
		return view{r.Method, r.RequestURI, r.Proto, r.Host, r.ProtoMajor, r.ProtoMinor, r.URL.String(),
			r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery, r.Close, r.ContentLength,
			r.Body == http.NoBody, maps.Clone(r.Header), len(r.TransferEncoding), len(r.Trailer)}
	}
	if g, w := v(got), v(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("parseRequest differs from http.ReadRequest for %q:\n got  %+v\n want %+v", head, g, w)
	}
}

// TestParseRequest: the seeds that must take the fast parser do, the ones
// it must leave to http.ReadRequest are declined, and the requests agree.
func TestParseRequest(t *testing.T) {
	declined := map[string]bool{
		"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n":                true, // escapes: url.URL decides
		"GET /a!b HTTP/1.1\r\nHost: a\r\n\r\n":                  true, // url.URL would escape '!'
		"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n":                  true,
		"GET /?q=%zz#f HTTP/1.1\r\nHost: a\r\n\r\n":             false,
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n":                   true, // invalid Host: the old path answers 400
		"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n": true,
		"GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n":       true,
		"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n":   false,
		"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n":                true, // not origin form
	}
	tmpl := (&http.Request{}).WithContext(context.WithValue(context.Background(), cutSlotKey{}, "conn"))
	for _, s := range requestSeeds {
		data := []byte(s)
		end := headEnd(data, 0)
		bodyLen, fast := fastHead(data[:end], false)
		var ok bool
		var got *http.Request
		if fast {
			var fr *fastRequest
			if fr, ok = parseRequest(tmpl, data[:end], bodyLen, bufio.NewReader(bytes.NewReader(data[end:])), nil); ok {
				got = &fr.req
			}
		}
		if ok == declined[s] {
			t.Errorf("parseRequest(%q): ok=%v", s, ok)
			continue
		}
		if !ok {
			continue
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("ReadRequest(%q): %v", s, err)
		}
		sameRequest(t, got, want, data[:end])
		if got.Context().Value(cutSlotKey{}) != "conn" {
			t.Errorf("the request lost the connection's context")
		}
	}
}

// TestFastBodyShort: a body that ends before its Content-Length is an
// error, not a short success.
func TestFastBodyShort(t *testing.T) {
	b := &fastBody{br: bufio.NewReader(bytes.NewReader([]byte("ab"))), n: 5}
	data, err := io.ReadAll(b)
	if string(data) != "ab" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %q, %v; want \"ab\", unexpected EOF", data, err)
	}
}

// TestCutHook: a request carrying the loop's connection context borrows
// the connection's slot; the end of that context cuts the exchange in
// flight and, at once, any later one; a derived context (which can end on
// its own) takes a context.AfterFunc instead.
func TestCutHook(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	slot := &cutSlot{}
	ctx := context.WithValue(base, cutSlotKey{}, slot)
	slot.ctx = ctx
	context.AfterFunc(ctx, slot.fire)

	cuts := 0
	h := hookCut(ctx, func() { cuts++ })
	if h.slot != slot || h.stop != nil {
		t.Fatalf("the connection context did not borrow the slot: %+v", h)
	}
	if !h.release() || cuts != 0 {
		t.Fatalf("release before the end: ok=false or cut %d times", cuts)
	}

	derived, stopDerived := context.WithCancel(ctx)
	defer stopDerived()
	if d := hookCut(derived, func() {}); d.slot != nil || d.stop == nil {
		t.Fatalf("a derived context borrowed the slot: %+v", d)
	}
	if b := hookCut(context.Background(), func() {}); b.slot != nil || b.stop != nil || !b.release() {
		t.Fatalf("a context that never ends got a hook: %+v", b)
	}

	h = hookCut(ctx, func() { cuts++ })
	cancel()
	waitFor(t, func() bool { // the AfterFunc runs on its own goroutine
		slot.mu.Lock()
		defer slot.mu.Unlock()
		return slot.fired
	})
	if cuts != 1 {
		t.Fatalf("the exchange in flight was cut %d times, want 1", cuts)
	}
	if h.release() {
		t.Fatal("release after the cut reported the connection reusable")
	}
	late := hookCut(ctx, func() { cuts++ })
	if cuts != 2 || late.release() {
		t.Fatalf("an exchange after the end was not cut at once (cuts %d)", cuts)
	}
}

// TestParseRequestDeclinesFraming: parseRequest declines the framing
// fields fastHead hands off on its own, so a caller that skipped fastHead
// could still not smuggle a body past it.
func TestParseRequestDeclinesFraming(t *testing.T) {
	tmpl := (&http.Request{}).WithContext(context.Background())
	for _, tc := range []struct {
		head    string
		bodyLen int
	}{
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 3},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 3},
		{"POST / HTTP/1.1\r\nHost: a\r\n\r\n", 3}, // a body length without a Content-Length field
		{"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 0},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", 3},
		{"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0},
	} {
		if _, ok := parseRequest(tmpl, []byte(tc.head), tc.bodyLen, bufio.NewReader(bytes.NewReader(nil)), nil); ok {
			t.Errorf("parseRequest took %q", tc.head)
		}
	}
}

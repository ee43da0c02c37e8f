package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The HTTP/1.1 forwarder: the hot path for HTTP/1.1 apps. A request that
// net/http's server parsed (and meshward checked: smuggling, policy,
// identity header, normalized path) is written to a pooled keep-alive
// connection with one buffered flush (head and small body in one write,
// one TLS record), and the response is read and streamed back on the same
// goroutine. Requests it does not take (HTTP/2 from the app, Upgrade,
// bodies of unknown length or over maxFastBody) keep the
// httputil.ReverseProxy path.

// maxFastBody is the largest request body the forwarder takes: bigger or
// unknown-length bodies may be streamed while the response is already
// coming, which needs the reader/writer split of the other path.
const maxFastBody = 64 << 10

// h1Eligible reports whether r can take the forwarder.
func h1Eligible(r *http.Request) bool {
	if r.ProtoMajor != 1 && r.ProtoMajor != 2 {
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > maxFastBody || r.Method == http.MethodConnect {
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	return r.URL.Opaque == ""
}

// hopHeaders are removed in both directions (RFC 9110 7.6.1), as
// httputil.ReverseProxy does.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

var errBadHeader = errors.New("header field contains a line break")

// errClientBody: reading the caller's request body failed (it stalled past
// the read-header deadline, or ended early). Not an upstream failure: no
// ejection, no retry, and the caller gets 400.
type errClientBody struct{ err error }

func (e *errClientBody) Error() string { return "request body: " + e.err.Error() }
func (e *errClientBody) Unwrap() error { return e.err }

// clientBodyError reports whether err is an errClientBody.
func clientBodyError(err error) bool {
	var body *errClientBody
	return errors.As(err, &body)
}

// writeRequest serializes r as HTTP/1.1 into c's buffer and flushes once.
// Hop-by-hop headers must be gone already.
func writeRequest(c *h1Conn, r *http.Request, host string, buf []byte) error {
	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if !validField(host) {
		return errBadHeader
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length":
			continue
		}
		if !validField(k) {
			return errBadHeader
		}
		for _, v := range vv {
			if !validField(v) {
				return errBadHeader
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	n := r.ContentLength
	if n > 0 || (n == 0 && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch)) {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(buf[:0], n, 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	if n > 0 && r.Body != nil {
		var copied int64
		for copied < n {
			k, err := r.Body.Read(buf[:min(int64(len(buf)), n-copied)])
			if k > 0 {
				copied += int64(k)
				if _, werr := bw.Write(buf[:k]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return &errClientBody{err: err}
			}
		}
		if copied != n {
			return &errClientBody{err: fmt.Errorf("%d of %d bytes", copied, n)}
		}
	}
	return bw.Flush()
}

// send writes r to c (writeRequest with a pooled copy buffer).
func (c *h1Conn) send(r *http.Request, host string) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return writeRequest(c, r, host, *bp)
}

// cutHook makes the end of a request's context cut its upstream exchange
// (cut sets a past deadline on the pooled connection): through the fast
// loop's per-connection cutSlot when the request carries that loop's
// context, else with a context.AfterFunc (none for a context that never
// ends). The slot saves two allocations and a registration in the
// parent context per request.
type cutHook struct {
	slot *cutSlot
	stop func() bool
}

func hookCut(ctx context.Context, cut func()) cutHook {
	if s, ok := ctx.Value(cutSlotKey{}).(*cutSlot); ok && s.ctx == ctx && s.set(cut) {
		return cutHook{slot: s}
	}
	if ctx.Done() == nil {
		return cutHook{}
	}
	return cutHook{stop: context.AfterFunc(ctx, cut)}
}

// release unregisters the hook; false means it fired (or is firing): the
// exchange was cut and its connection must not be reused.
func (h cutHook) release() bool {
	switch {
	case h.slot != nil:
		return h.slot.clear()
	case h.stop != nil:
		return h.stop()
	}
	return true
}

// cutSlot is a fast-loop connection's one cancellation hook (set up once
// per connection), lent to the exchange of its current request. Requests
// on one connection are served one at a time, so one slot suffices.
type cutSlot struct {
	ctx   context.Context // the connection's request context, which fires it
	mu    sync.Mutex
	fired bool
	cut   func()
	// req is the request the loop serves now, the only one requestDone
	// marks; done says its exchange went through the forwarder alone and
	// is over. Only the loop's goroutine, which runs the handler, touches
	// either.
	req  *http.Request
	done bool
}

type cutSlotKey struct{}

// requestDone tells the fast loop that serves r, if one does, that r went
// through the forwarder alone (pool, request writer, response copy) and
// its exchange is over: nothing outside the loop holds r, its header map
// or its URL, so the loop may reuse them for the connection's next
// request. Only the very request the loop parsed counts: a copy (r.Clone,
// r.WithContext, as tracing makes) marks nothing, and a request that met
// anything else (the HTTP/2 fallback, a reverse proxy) is never marked and
// is left to the garbage collector.
func requestDone(r *http.Request) {
	if s, ok := r.Context().Value(cutSlotKey{}).(*cutSlot); ok && s.req == r {
		s.done = true
	}
}

// fire runs when ctx ends: it cuts the current exchange, if any, and
// every later one at once.
func (s *cutSlot) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fired = true
	if s.cut != nil {
		s.cut()
	}
}

// set lends the slot to an exchange; false if another one holds it (the
// caller then registers its own hook).
func (s *cutSlot) set(cut func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut != nil {
		return false
	}
	if s.fired {
		cut()
	}
	s.cut = cut
	return true
}

// clear takes the slot back from its exchange; false means it fired: the
// exchange was cut.
func (s *cutSlot) clear() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = nil
	return !s.fired
}

// validField: no CR, LF or NUL (net/http's parser already refuses them in
// what clients send; this guards values meshward itself set).
func validField(s string) bool {
	for i := range len(s) {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// h1Exchange is one request/response on one pooled connection. Either
// res is set, or the response head waits unparsed in c's buffer and raw
// describes it (h1head.go).
type h1Exchange struct {
	pool *h1Pool
	c    *h1Conn
	req  *http.Request
	res  *http.Response
	raw  respHead
	hook cutHook // the cancellation hook of the request's context
}

var aLongTimeAgo = time.Unix(1, 0)

// errStale means a reused connection turned out to be closed before any
// response byte: the request can go again on a fresh connection.
type errStale struct{ err error }

func (e *errStale) Error() string { return "stale keep-alive connection: " + e.err.Error() }
func (e *errStale) Unwrap() error { return e.err }

// isStale reports whether err is an errStale.
func isStale(err error) bool {
	var stale *errStale
	return errors.As(err, &stale)
}

// roundTrip sends r to addr over the pool and reads the response head.
// headerTimeout > 0 bounds the wait for the response head (504).
// A request without a body that failed on a stale reused connection is
// sent again once on a new connection; errPoolFull is returned as is.
func (p *h1Pool) roundTrip(ctx context.Context, addr string, r *http.Request, host string, headerTimeout time.Duration) (*h1Exchange, error) {
	for attempt := 0; ; attempt++ {
		x, err := p.roundTripOnce(ctx, addr, r, host, headerTimeout)
		if err != nil && attempt == 0 && isStale(err) && retryable(r) && ctx.Err() == nil {
			continue
		}
		return x, err
	}
}

func (p *h1Pool) roundTripOnce(ctx context.Context, addr string, r *http.Request, host string, headerTimeout time.Duration) (*h1Exchange, error) {
	c, err := p.get(ctx, addr, r.Body != nil && r.Body != http.NoBody)
	if err != nil {
		return nil, err
	}
	hook := hookCut(ctx, c.abort)
	fail := func(err error) (*h1Exchange, error) {
		hook.release()
		p.put(c, false)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if clientBodyError(err) {
			return nil, err // the caller's fault, not the upstream's
		}
		if netTimeout(err) {
			return nil, fmt.Errorf("response headers: %w", context.DeadlineExceeded)
		}
		if c.reused && !errors.Is(err, errBadHeader) {
			return nil, &errStale{err: err}
		}
		return nil, err
	}
	if headerTimeout > 0 {
		_ = c.SetDeadline(time.Now().Add(headerTimeout))
	}
	err = c.sendThenAwait(r, host)
	if err != nil {
		return fail(err)
	}
	x := &h1Exchange{pool: p, c: c, req: r, hook: hook}
	c.lim.n = maxResponseHead
	defer func() { c.lim.n = -1 }() // the body is not limited
	raw, ok, err := peekResponseHead(c.br, r.Method)
	if err != nil {
		return fail(err)
	}
	if ok {
		x.raw = raw
	} else if x.res, err = readResponse(c.br, r); err != nil { //nolint:bodyclose // respond closes it
		return fail(err)
	}
	c.reused = true // past the head: a failure now is not a stale connection
	if headerTimeout > 0 && !x.bodyBuffered() {
		// The body may stream for longer. (A body already buffered needs
		// no more reads: the next request sets its own deadline.)
		_ = c.SetDeadline(time.Time{})
	}
	return x, nil
}

// readResponse parses a response head with the standard library,
// skipping 1xx informational responses (100 Continue, 103 Early Hints), at
// most max1xx of them. (The bytes read are bounded by the connection's
// head limit, see h1Conn.lim.)
func readResponse(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		if n > max1xx {
			return nil, errors.New("too many 1xx responses")
		}
		res, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			_ = res.Body.Close()
			return nil, errors.New("unexpected 101 Switching Protocols")
		}
		if res.StatusCode >= 200 {
			return res, nil
		}
	}
}

// bodyBuffered reports whether the whole response is in the read buffer.
func (x *h1Exchange) bodyBuffered() bool {
	if x.res == nil {
		return int64(x.c.br.Buffered()) >= int64(x.raw.size)+x.raw.length
	}
	return x.res.ContentLength >= 0 && int64(x.c.br.Buffered()) >= x.res.ContentLength
}

// errAbort means the response was cut after its head went out: the
// handler must abort (panic(http.ErrAbortHandler)) so the client does not
// take a truncated body for a whole one.
var errAbort = errors.New("response body cut")

// respond streams x's response to w and returns the connection to the pool
// when the exchange ended cleanly.
func (x *h1Exchange) respond(w http.ResponseWriter) error {
	if x.res == nil {
		if sw, ok := w.(*statusWriter); ok {
			if hw, ok := sw.ResponseWriter.(*h1Response); ok {
				return x.respondRaw(sw, hw)
			}
		}
		// Another writer (net/http's, HTTP/2): parse the head after all.
		res, err := readResponse(x.c.br, x.req) //nolint:bodyclose // closed below, as x.res
		if err != nil {
			x.discard()
			httpError(w, http.StatusBadGateway, "meshward: malformed upstream response")
			return nil
		}
		x.res = res
	}
	res := x.res
	if sw, ok := w.(*statusWriter); ok && !x.bodyBuffered() {
		if hw, ok := sw.ResponseWriter.(*h1Response); ok {
			defer hw.c.watchGone()()
		}
	}
	dst := w.Header()
	for k, vv := range res.Header {
		dst[k] = vv
	}
	removeHopHeaders(dst)
	w.WriteHeader(res.StatusCode)
	bp := copyBufs.Get().(*[]byte)
	buf := *bp
	flush := res.ContentLength < 0 // streaming (e.g. server-sent events): pass each read on
	var rc *http.ResponseController
	var werr, rerr error
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr = w.Write(buf[:n]); werr != nil {
				break
			}
			if flush {
				if rc == nil {
					rc = http.NewResponseController(w)
				}
				_ = rc.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	copyBufs.Put(bp)
	for k, vv := range res.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
	fired := !x.hook.release()
	reusable := werr == nil && rerr == nil && !fired && !res.Close
	if !reusable {
		_ = res.Body.Close()
	}
	x.pool.put(x.c, reusable)
	x.c = nil
	if rerr != nil {
		return errAbort
	}
	return nil
}

// respondRaw copies a validated response head field by field (hop-by-hop
// fields left out) and then its Content-Length body to the fast loop's
// writer.
func (x *h1Exchange) respondRaw(sw *statusWriter, w *h1Response) error {
	br, rh := x.c.br, &x.raw
	if !x.bodyBuffered() {
		defer w.c.watchGone()()
	}
	head, _ := br.Peek(rh.size)
	sw.code, sw.done = rh.status, true
	w.writeRawHead(rh, head)
	_, _ = br.Discard(rh.size)
	var rerr error
	for n := rh.length; n > 0 && w.err == nil; {
		if br.Buffered() == 0 {
			if _, rerr = br.Peek(1); rerr != nil {
				break
			}
		}
		b, _ := br.Peek(int(min(int64(br.Buffered()), n)))
		_, _ = w.writeBody(b)
		_, _ = br.Discard(len(b))
		n -= int64(len(b))
	}
	fired := !x.hook.release()
	x.pool.put(x.c, rerr == nil && w.err == nil && !fired && !rh.close)
	x.c = nil
	if rerr != nil {
		return errAbort
	}
	return nil
}

// discard ends an exchange whose response is not sent on.
func (x *h1Exchange) discard() {
	x.hook.release()
	x.pool.put(x.c, false)
}

func netTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

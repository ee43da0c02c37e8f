package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"meshward.dev/meshward/internal/observe"
)

// h1Server is the sidecar's own HTTP/1.1 connection loop, for the common
// request: HTTP/1.0 or 1.1 in origin form, no body or a Content-Length
// body up to maxFastBody, no Upgrade, Transfer-Encoding or Expect. Those
// are parsed by the standard library's strict parser (http.ReadRequest)
// and answered by the same handler as before, through h1Response.
//
// It exists for speed: net/http's server starts a background read for
// every request (to notice a client going away), which costs a goroutine
// hand-off and an extra read syscall per request; profiles put it at 6-11%
// of the sidecar pair's CPU (docs/benchmarks.md). The price is that a
// client going away mid-request is noticed when its response is written,
// not before; the response-header timeout still bounds the wait.
//
// Everything else (h2c, Upgrade, chunked or large bodies, Expect, CONNECT,
// absolute-form targets, a head larger than the read buffer, anything
// unusual) is handed with the bytes read so far to net/http's server,
// which keeps every rule it had: the smuggling guard starts scanning at
// the handed-off request, MaxHeaderBytes answers 431, and so on. The
// classifier only decides which server takes a request; after parsing,
// the fast path checks again and refuses (400, connection closed) a
// request whose framing is not what the classifier saw.
type h1Server struct {
	handler    http.HandlerFunc
	fallback   *chanListener // net/http's server for what the loop does not take
	readHeader time.Duration
	idle       time.Duration
	maxHeader  int  // a larger head goes to net/http, which answers 431
	allowH2C   bool // the h2c preface may open a connection (plaintext listeners)
	onLimit    func(limit string)
	log        *slog.Logger

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*h1ServerConn]struct{}
}

// Connection states for the drain: an idle connection (between requests)
// is closed by shutdown; an active one finishes its request first.
const (
	h1Idle int32 = iota
	h1Active
	h1Closed
)

type h1ServerConn struct {
	s      *h1Server
	g      *guardConn
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context
	cancel context.CancelFunc // ends ctx: the drain ran out of time
	remote string
	state  atomic.Int32
	res    h1Response
	slot   cutSlot       // cuts the upstream exchange when ctx ends (forward.go)
	tmpl   *http.Request // empty but for ctx: what parseRequest starts from
	spare  *fastRequest  // the last request's block, for the next (h1request.go)
}

func newH1Server(handler http.HandlerFunc, fallback *chanListener, to Timeouts, lim Limits, allowH2C bool, onLimit func(string), log *slog.Logger) *h1Server {
	return &h1Server{
		handler: handler, fallback: fallback, readHeader: to.ReadHeader, idle: to.Idle, maxHeader: lim.MaxHeaderBytes,
		allowH2C: allowH2C, onLimit: onLimit, log: log, conns: map[*h1ServerConn]struct{}{},
	}
}

// serve runs the loop on g until the connection ends or is handed off.
// ctx carries what handlers look up (connInfo); it must not be cancelled
// by the drain, which lets in-flight requests finish.
func (s *h1Server) serve(ctx context.Context, g *guardConn) {
	g.scanOff()
	c := &h1ServerConn{s: s, g: g, remote: g.RemoteAddr().String()}
	c.br = h1Readers.Get().(*bufio.Reader)
	c.br.Reset(g)
	c.bw = h1Writers.Get().(*bufio.Writer)
	c.bw.Reset(g)
	cctx, cancel := context.WithCancel(ctx)
	c.ctx, c.cancel = context.WithValue(cctx, cutSlotKey{}, &c.slot), cancel
	c.slot.ctx = c.ctx
	context.AfterFunc(c.ctx, c.slot.fire)
	c.tmpl = (&http.Request{}).WithContext(c.ctx)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	handedOff := c.loop()
	c.cancel()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.bw.Reset(nil)
	h1Writers.Put(c.bw)
	if !handedOff {
		_ = g.Close()
		c.br.Reset(nil)
		h1Readers.Put(c.br)
	}
}

// loop serves requests; true means the connection went to net/http.
func (c *h1ServerConn) loop() (handedOff bool) {
	s := c.s
	first := true
	crlf := 0      // stray CR/LF bytes before this request (at most 4 tolerated)
	armed := false // the wait for this request has its deadline (set once)
	for {
		if c.br.Buffered() == 0 {
			if !armed {
				armed = true
				wait := s.idle
				if first {
					wait = s.readHeader
				}
				_ = c.g.SetReadDeadline(time.Now().Add(wait))
			}
			if _, err := c.br.Peek(1); err != nil {
				return false
			}
		}
		if crlf += skipLeadingCRLF(c.br); crlf > 4 {
			c.badRequest("malformed request")
			return false
		}
		if c.br.Buffered() == 0 {
			continue // only empty lines: still waiting for a request
		}
		if !c.state.CompareAndSwap(h1Idle, h1Active) {
			return false // shutdown closed it
		}
		// What is still to come of the request (its head, then its body)
		// must come within the read-header timeout. The usual request
		// arrives whole in one read and needs no new deadline; the first
		// one has it already.
		if buf, _ := c.br.Peek(c.br.Buffered()); !first && headEnd(buf, 0) < 0 {
			_ = c.g.SetReadDeadline(time.Now().Add(s.readHeader))
		}
		head, err := peekHead(c.br, s.maxHeader)
		if err != nil && !errors.Is(err, errHeadTooBig) {
			if netTimeout(err) {
				s.onLimit(limitReadHeader)
			}
			return false
		}
		bodyLen, fast := 0, false
		if err == nil {
			bodyLen, fast = fastHead(head, first && s.allowH2C)
		}
		if !fast {
			return c.handOff()
		}
		if !first && len(head)+bodyLen > c.br.Buffered() {
			_ = c.g.SetReadDeadline(time.Now().Add(s.readHeader))
		}
		first, crlf, armed = false, 0, false
		if !c.serveOne(head, bodyLen) {
			return false
		}
		c.state.Store(h1Idle)
		if s.closing.Load() && c.state.CompareAndSwap(h1Idle, h1Closed) {
			return false
		}
	}
}

// serveOne parses, checks and answers one request (its head, which
// fastHead took, is head); false closes the connection. parseRequest
// (h1request.go) takes the usual head; what it declines takes
// http.ReadRequest and checkFastRequest.
func (c *h1ServerConn) serveOne(head []byte, bodyLen int) (keep bool) {
	var req *http.Request
	fr, ok := parseRequest(c.tmpl, head, bodyLen, c.br, c.spare)
	c.spare = nil
	if ok {
		_, _ = c.br.Discard(len(head))
		req = &fr.req
		c.slot.req, c.slot.done = req, false
		// Runs after everything below, the body's finish included: the
		// block goes back, emptied, for the next request only if the
		// forwarder alone carried this one (requestDone) and the
		// connection goes on.
		defer func() {
			done := c.slot.done
			c.slot.req, c.slot.done = nil, false
			if keep && done && fr.recycle() {
				c.spare = fr
			}
		}()
	} else {
		var err error
		if req, err = http.ReadRequest(c.br); err != nil {
			c.badRequest("malformed request")
			return false
		}
		if msg := checkFastRequest(req); msg != "" {
			c.badRequest(msg)
			return false
		}
		req = req.WithContext(c.ctx)
	}
	req.RemoteAddr = c.remote
	if fb, ok := req.Body.(*fastBody); ok {
		// Runs last: after the response (and a panic's recovery), before
		// the loop reads the connection again or gives its reader back.
		defer func() {
			if !fb.finish(keep) {
				keep = false
			}
		}()
	}
	w := &c.res
	w.reset(c, req)
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
				c.s.log.Error("panic serving request", slog.Any(observe.KeyError, v), slog.String("stack", string(debug.Stack())))
			}
			_ = c.bw.Flush() // what was written goes out; the cut shows as a short body
			keep = false
		}
		w.req = nil
	}()
	c.s.handler(w, req)
	if !w.finish() {
		return false
	}
	if _, fast := req.Body.(*fastBody); !fast && req.Body != http.NoBody {
		// A handler that refused the request did not read its body (at
		// most maxFastBody): skip it to reach the next request. (A fast
		// body is skipped by its finish, deferred above.)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return false
		}
	}
	return !w.closeAfter && !c.s.closing.Load()
}

// checkFastRequest re-checks what the classifier promised and applies
// net/http server's own request checks; "" means the request is fine.
func checkFastRequest(req *http.Request) string {
	if len(req.TransferEncoding) > 0 || req.ContentLength < 0 || req.ContentLength > maxFastBody ||
		req.Header["Upgrade"] != nil || req.Header["Expect"] != nil || req.ProtoMajor != 1 {
		return "unexpected request framing"
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

func (c *h1ServerConn) badRequest(msg string) {
	_, _ = c.bw.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(msg)+len("meshward: \n")) + "\r\n\r\nmeshward: " + msg + "\n")
	_ = c.bw.Flush()
}

// handOff passes the connection, with the bytes read but not consumed, to
// net/http's server. The smuggling guard starts scanning at the request
// the loop did not take.
func (c *h1ServerConn) handOff() bool {
	_ = c.g.SetReadDeadline(time.Time{}) // net/http sets its own
	buf, _ := c.br.Peek(c.br.Buffered())
	c.g.scanFrom(buf)
	hc := &handoffConn{guardConn: c.g, br: c.br}
	if !c.s.fallback.push(hc) {
		_ = hc.Close()
		c.br.Reset(nil)
		h1Readers.Put(c.br)
	}
	return true
}

// shutdown stops keep-alive: idle connections are closed now, active ones
// after their response. It returns when none is left or ctx ends (then it
// closes the rest).
func (s *h1Server) shutdown(ctx context.Context) {
	s.closing.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			if c.state.CompareAndSwap(h1Idle, h1Closed) {
				_ = c.g.Close()
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.cancel() // a handler waiting for its upstream gives up
				_ = c.g.Close()
			}
			s.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

// errHeadTooBig: the request head does not fit the read buffer; net/http
// (with MaxHeaderBytes) takes it.
var errHeadTooBig = errors.New("request head larger than the read buffer")

// peekHead returns the request head (through its empty line) without
// consuming it, reading more as needed; errHeadTooBig when it is longer
// than limit or than the read buffer.
func peekHead(br *bufio.Reader, limit int) ([]byte, error) {
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := headEnd(buf, from); i >= 0 {
			if i > limit {
				return nil, errHeadTooBig
			}
			return buf[:i], nil
		}
		if len(buf) >= br.Size() || len(buf) > limit {
			return nil, errHeadTooBig
		}
		from = max(0, len(buf)-3)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd is the length of the head in b (through "\n\r\n" or "\n\n"),
// or -1; the search starts at from.
func headEnd(b []byte, from int) int {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// skipLeadingCRLF drops the buffered CR or LF bytes before a request line
// (RFC 9112 2.2 tolerance for clients that add CRLF after a body) and
// returns how many; the caller tolerates 4, as net/http does.
func skipLeadingCRLF(br *bufio.Reader) int {
	b, _ := br.Peek(min(br.Buffered(), 5))
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	_, _ = br.Discard(n)
	return n
}

// fastHead reports whether the loop takes the request whose head is h,
// and the length of its body. It is a conservative filter, not a parser: a
// false "no" only costs speed (net/http takes the request), and a request
// it lets through is checked again after http.ReadRequest parsed it
// (checkFastRequest).
func fastHead(h []byte, h2cPossible bool) (bodyLen int, ok bool) {
	if h2cPossible && bytes.HasPrefix(h, h2Preface[:4]) {
		return 0, false
	}
	line, rest, found := cutLine(h)
	if !found {
		return 0, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp+1 >= len(line) || line[sp+1] != '/' { // origin form only
		return 0, false
	}
	if string(line[:sp]) == http.MethodConnect || string(line[:sp]) == "PRI" {
		return 0, false
	}
	if !bytes.HasSuffix(line, []byte(" HTTP/1.1")) && !bytes.HasSuffix(line, []byte(" HTTP/1.0")) {
		return 0, false
	}
	hosts, lengths := 0, 0
	for len(rest) > 0 {
		if line, rest, found = cutLine(rest); !found {
			return 0, false
		}
		if len(line) == 0 {
			break // the empty line ends the head
		}
		if line[0] == ' ' || line[0] == '\t' { // obs-fold
			return 0, false
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
		case asciiEqualFold(name, "content-length"):
			lengths++
			n, ok := parseLength(value)
			if !ok || n > maxFastBody {
				return 0, false
			}
			bodyLen = int(n)
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"),
			asciiEqualFold(name, "expect"), asciiEqualFold(name, "te"):
			return 0, false
		}
	}
	return bodyLen, hosts == 1 && lengths <= 1
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// handoffConn is a connection given to net/http mid-stream: reads return
// the bytes the fast loop had buffered first.
type handoffConn struct {
	*guardConn
	mu sync.Mutex
	br *bufio.Reader
}

func (c *handoffConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.br != nil {
		if c.br.Buffered() > 0 {
			n, err := c.br.Read(p)
			c.mu.Unlock()
			return n, err
		}
		c.br.Reset(nil)
		h1Readers.Put(c.br)
		c.br = nil
	}
	c.mu.Unlock()
	return c.guardConn.Read(p)
}

// guardOf finds the guard under a connection net/http was given.
func guardOf(c net.Conn) *guardConn {
	switch c := c.(type) {
	case *guardConn:
		return c
	case *handoffConn:
		return c.guardConn
	}
	return nil
}

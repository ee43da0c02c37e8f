package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1Pool keeps HTTP/1.1 keep-alive connections per address for the
// forwarder (forward.go): one request at a time per connection, written and
// read on the request's own goroutine. Unlike http.Transport there is no
// reader or writer goroutine per connection, so a request costs no
// goroutine hand-offs; an idle connection the peer closed is detected with
// a non-blocking peek when it is taken from the pool.
type h1Pool struct {
	dial      func(ctx context.Context, addr string) (net.Conn, error)
	now       func() time.Time
	idleFor   time.Duration // an idle connection older than this is closed, not reused
	maxIdle   int           // per address
	maxActive int           // per address; 0 = unlimited

	mu     sync.Mutex
	hosts  map[string]*h1Host
	closed bool
}

type h1Host struct {
	idle   []*h1Conn // LIFO: the most recently used connection first
	active int
}

// h1Conn is one pooled connection with its buffers.
type h1Conn struct {
	net.Conn
	raw    net.Conn // the TCP connection under a *tls.Conn (for the liveness peek)
	addr   string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool        // served a request before
	lim    readLimiter // what br reads from: bounds a response head

	// Set once at dial, so that a request allocates none of them: the
	// poller handle of raw (nil without one), and the callbacks bound to c.
	rc    syscall.RawConn
	await func(fd uintptr) bool // sendThenAwait's poller callback
	abort func()                // the cancellation hook: fail the exchange now

	// The request sendThenAwait is writing (valid during the call only).
	out struct {
		r    *http.Request
		host string
		sent bool
		err  error
	}
}

// Limits of what an upstream may send before its response head is
// complete (1xx responses included), as http.Transport bounds them: an
// app or a peer must not be able to grow a sidecar's memory without end.
const (
	maxResponseHead = 1 << 20
	max1xx          = 8
)

var errResponseHeadTooBig = errors.New("response head too large")

// readLimiter reads from r at most n bytes, then fails; n < 0: no limit.
type readLimiter struct {
	r io.Reader
	n int64
}

func (l *readLimiter) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errResponseHeadTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// peekAfter is how long a connection must have been idle before get
// checks that the peer has not closed it.
const peekAfter = time.Second

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

func newH1Pool(dial func(ctx context.Context, addr string) (net.Conn, error), now func() time.Time, idleFor time.Duration, maxIdle, maxActive int) *h1Pool {
	return &h1Pool{dial: dial, now: now, idleFor: idleFor, maxIdle: maxIdle, maxActive: maxActive, hosts: map[string]*h1Host{}}
}

// errPoolFull means every connection allowed to addr is busy; the caller
// takes another path (HTTP/2) instead of waiting.
var errPoolFull = errors.New("http/1.1 pool full")

// get returns an idle live connection to addr or dials a new one. With
// peek, an idle connection is always checked first (the request has a body,
// which could not be sent again).
func (p *h1Pool) get(ctx context.Context, addr string, peek bool) (*h1Conn, error) {
	now := p.now()
	p.mu.Lock()
	h := p.hosts[addr]
	if h == nil {
		h = &h1Host{}
		p.hosts[addr] = h
	}
	for len(h.idle) > 0 {
		c := h.idle[len(h.idle)-1]
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
		idle := now.Sub(c.idleAt)
		// The peek costs a syscall: skip it for a connection that was busy
		// a moment ago (a peer closing it since is a race the no-body retry
		// covers, as in http.Transport).
		if idle > p.idleFor || ((peek || idle >= peekAfter) && !c.checkAlive()) {
			p.mu.Unlock()
			c.close()
			p.mu.Lock()
			continue
		}
		h.active++
		p.mu.Unlock()
		return c, nil
	}
	if p.maxActive > 0 && h.active >= p.maxActive {
		p.mu.Unlock()
		return nil, errPoolFull
	}
	h.active++
	p.mu.Unlock()
	nc, err := p.dial(ctx, addr)
	if err != nil {
		p.done(addr)
		return nil, err
	}
	c := &h1Conn{Conn: nc, raw: nc, addr: addr}
	if tc, ok := nc.(*tls.Conn); ok {
		c.raw = tc.NetConn()
	}
	if sc, ok := c.raw.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.await = c.awaitStep
	c.abort = func() { _ = c.SetDeadline(aLongTimeAgo) }
	c.lim = readLimiter{r: c.Conn, n: -1}
	c.br = h1Readers.Get().(*bufio.Reader)
	c.br.Reset(&c.lim)
	c.bw = h1Writers.Get().(*bufio.Writer)
	c.bw.Reset(c.Conn)
	return c, nil
}

// done forgets an active connection that is gone.
func (p *h1Pool) done(addr string) {
	p.mu.Lock()
	if h := p.hosts[addr]; h != nil {
		h.active--
	}
	p.mu.Unlock()
}

// put returns c for reuse, or closes it when it cannot be reused.
func (p *h1Pool) put(c *h1Conn, reusable bool) {
	if reusable && c.br.Buffered() == 0 {
		c.idleAt = p.now()
		c.reused = true
		p.mu.Lock()
		h := p.hosts[c.addr]
		h.active--
		if !p.closed && len(h.idle) < p.maxIdle {
			h.idle = append(h.idle, c)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		c.close()
		return
	}
	p.done(c.addr)
	c.close()
}

// closeIdle closes every idle connection; with final, later puts close too.
func (p *h1Pool) closeIdle(final bool) {
	p.mu.Lock()
	var idle []*h1Conn
	for _, h := range p.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	if final {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// checkAlive clears a deadline the last exchange may have left (it would
// fail the peek once passed), then peeks.
func (c *h1Conn) checkAlive() bool {
	_ = c.SetDeadline(time.Time{})
	return c.alive()
}

func (c *h1Conn) close() {
	_ = c.Conn.Close() //nolint:staticcheck // QF1008: c.Close() would read as a typo for c.close()
	if c.br != nil {
		c.br.Reset(nil)
		h1Readers.Put(c.br)
		c.bw.Reset(nil)
		h1Writers.Put(c.bw)
		c.br, c.bw = nil, nil
	}
}

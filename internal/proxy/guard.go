package proxy

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// guardConn watches the HTTP/1.1 byte stream for a header block carrying both
// Content-Length and Transfer-Encoding. net/http follows RFC 9112 and lets
// Transfer-Encoding win, but such a message is a request-smuggling attempt
// ("ought to be handled as an error"): the handler refuses it with 400 and
// closes the connection. The scan stops for good once the connection turns
// out to be HTTP/2 (h2c preface).
type guardConn struct {
	net.Conn
	ci      *connInfo // inbound only
	onClose func()

	conflictSeen atomic.Bool
	closeOnce    sync.Once

	// limit accounting (see trackLimits)
	onLimit   func(limit string)
	actives   atomic.Int64 // requests net/http started reading
	handled   atomic.Int64 // requests that reached a handler
	errStatus atomic.Bool  // net/http itself answered 4xx/5xx

	// scanner state, used only by Read (one reader at a time)
	off      bool
	started  bool
	line     [24]byte // first bytes of the current line, lower-cased
	lineLen  int
	lineHead bool // still within the first len(line) bytes of the line
	sawCR    bool
	hasCL    bool
	hasTE    bool
	empty    bool // the current line is empty so far
}

func newGuardConn(c net.Conn, ci *connInfo, onClose func()) *guardConn {
	return &guardConn{Conn: c, ci: ci, onClose: onClose, lineHead: true, empty: true}
}

var h2Preface = []byte("PRI * HTTP/2.0")

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if n > 0 && !g.off {
		if !g.started {
			g.started = true
			if bytes.HasPrefix(p[:n], h2Preface[:min(n, len(h2Preface))]) && n >= 4 {
				g.off = true
				return n, err
			}
		}
		g.scan(p[:n])
	}
	return n, err
}

// scanOff stops the scan before the first read: the fast HTTP/1.1 loop
// (h1server.go) only takes requests without Transfer-Encoding.
func (g *guardConn) scanOff() { g.off = true }

// scanFrom restarts the scan at a request boundary, when the fast loop
// hands the connection to net/http; b is what it read and did not consume.
func (g *guardConn) scanFrom(b []byte) {
	g.off, g.started = false, true
	g.lineLen, g.lineHead, g.empty, g.sawCR, g.hasCL, g.hasTE = 0, true, true, false, false, false
	if bytes.HasPrefix(b, h2Preface[:min(len(b), len(h2Preface))]) && len(b) >= 4 {
		g.off = true
		return
	}
	g.scan(b)
}

func (g *guardConn) scan(b []byte) {
	for _, c := range b {
		switch c {
		case '\r':
			g.sawCR = true
			continue
		case '\n':
			if g.empty {
				// End of a header block (or a blank line in a body).
				if g.hasCL && g.hasTE {
					g.conflictSeen.Store(true)
				}
				g.hasCL, g.hasTE = false, false
			} else {
				g.endLine()
			}
			g.lineLen, g.lineHead, g.empty, g.sawCR = 0, true, true, false
			continue
		}
		g.sawCR = false
		g.empty = false
		if g.lineHead {
			if g.lineLen < len(g.line) {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				g.line[g.lineLen] = c
				g.lineLen++
			} else {
				g.lineHead = false
			}
			if c == ':' {
				g.endLine()
				g.lineHead = false
			}
		}
	}
}

func (g *guardConn) endLine() {
	if !g.lineHead {
		return
	}
	l := g.line[:g.lineLen]
	switch {
	case bytes.HasPrefix(l, []byte("content-length:")):
		g.hasCL = true
	case bytes.HasPrefix(l, []byte("transfer-encoding:")):
		g.hasTE = true
	}
	g.lineHead = false
}

var (
	status431 = []byte("HTTP/1.1 431")
	status4xx = []byte("HTTP/1.1 4")
	status5xx = []byte("HTTP/1.1 5")
)

// Write notices the error responses net/http writes by itself (before any
// handler): 431 is the header size limit.
func (g *guardConn) Write(p []byte) (int, error) {
	if g.onLimit != nil && g.actives.Load() > g.handled.Load() && len(p) >= len(status431) {
		switch {
		case bytes.HasPrefix(p, status431):
			g.onLimit(limitHeaderBytes)
			g.errStatus.Store(true)
		case bytes.HasPrefix(p, status4xx), bytes.HasPrefix(p, status5xx):
			g.errStatus.Store(true)
		}
	}
	return g.Conn.Write(p)
}

// trackLimits is an http.Server ConnState hook for guarded connections: a
// connection that started a request and closed before any handler ran,
// without net/http answering an error, hit the read-header timeout.
func trackLimits(c net.Conn, s http.ConnState) {
	g := guardOf(c)
	if g == nil || g.onLimit == nil {
		return
	}
	switch s {
	case http.StateActive:
		g.actives.Add(1)
	case http.StateClosed:
		if g.actives.Load() > g.handled.Load() && !g.errStatus.Load() {
			g.onLimit(limitReadHeader)
		}
	}
}

// markHandled records that a request on c reached a handler.
func markHandled(ctx context.Context) {
	if g, ok := ctx.Value(guardKey{}).(*guardConn); ok {
		g.handled.Add(1)
	}
}

// conflict reports whether a header block with both framing headers was seen.
func (g *guardConn) conflict() bool { return g.conflictSeen.Load() }

func (g *guardConn) Close() error {
	err := g.Conn.Close()
	g.closeOnce.Do(func() {
		if g.onClose != nil {
			g.onClose()
		}
	})
	return err
}

// CloseWrite half-closes when the underlying conn can (hijacked upgrades).
func (g *guardConn) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// guardListener wraps accepted connections in guardConn.
type guardListener struct {
	net.Listener
	onAccept func(net.Conn) (func(), bool) // tracker registration; false to drop
	onLimit  func(limit string)
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var release func()
		if l.onAccept != nil {
			r, ok := l.onAccept(c)
			if !ok {
				_ = c.Close()
				continue
			}
			release = r
		}
		g := newGuardConn(c, nil, release)
		g.onLimit = l.onLimit
		return g, nil
	}
}

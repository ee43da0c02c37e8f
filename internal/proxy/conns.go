package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// connInfo is what the inbound side knows about one verified mTLS
// connection; handlers find it in the request context.
type connInfo struct {
	peer    spiffeid.ID
	peerStr string
	conn    net.Conn // the *tls.Conn
	guard   *guardConn
	release func()

	mu          sync.Mutex
	resetWindow time.Time
	resets      int
}

type connInfoKey struct{}

func withConnInfo(ctx context.Context, ci *connInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

func connInfoFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*connInfo)
	return ci
}

// noteReset records a stream the client cancelled before its response was
// complete and reports whether the connection exceeded limit per minute.
func (ci *connInfo) noteReset(now time.Time, limit int) bool {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if now.Sub(ci.resetWindow) >= time.Minute {
		ci.resetWindow, ci.resets = now, 0
	}
	ci.resets++
	return ci.resets > limit
}

// connTracker counts open inbound connections per peer (a limit) and keeps
// every open connection so a drain that runs out of time can close them.
type connTracker struct {
	mu      sync.Mutex
	perPeer map[spiffeid.ID]int
	open    map[net.Conn]struct{}
}

func newConnTracker() *connTracker {
	return &connTracker{perPeer: map[spiffeid.ID]int{}, open: map[net.Conn]struct{}{}}
}

// acquire registers c for peer unless peer already has limit connections.
// The returned release is idempotent.
func (t *connTracker) acquire(peer spiffeid.ID, c net.Conn, limit int) (release func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !peer.IsZero() && limit > 0 && t.perPeer[peer] >= limit {
		return nil, false
	}
	if !peer.IsZero() {
		t.perPeer[peer]++
	}
	t.open[c] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			delete(t.open, c)
			if !peer.IsZero() {
				if t.perPeer[peer]--; t.perPeer[peer] <= 0 {
					delete(t.perPeer, peer)
				}
			}
		})
	}, true
}

func (t *connTracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.open))
	for c := range t.open {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// chanListener hands already-accepted connections to an http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to the server; false if the listener is closed.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// isClosed reports whether err means a listener or connection was closed.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

var zeroID spiffeid.ID

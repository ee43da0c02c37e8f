package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchGone watches the client of c while a response body streams from
// the upstream: when the client closes its end (a FIN, a reset), the
// connection's context is cancelled, which ends the forwarder's wait on a
// silent upstream (its cancellation hook sets the upstream deadline).
// net/http's server does this with a read per request; the fast loop does
// it only for bodies that are not already in memory, where a wait can be
// long (streams, server-sent events, large downloads). stop ends the watch
// and returns when it has.
func (c *h1ServerConn) watchGone() (stop func()) {
	sc := rawSyscallConn(c.g.Conn)
	if sc == nil {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rc.Read(func(fd uintptr) bool {
			// Woken on every arrival; only the peer's shutdown ends the
			// watch (bytes that come, e.g. a pipelined request, stay unread).
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}} //nolint:gosec // an fd fits
			n, err := unix.Poll(fds, 0)
			if err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
				c.cancel()
				return true
			}
			return false
		})
	}()
	return func() {
		_ = c.g.SetReadDeadline(aLongTimeAgo) // ends the wait above
		<-done
		_ = c.g.SetReadDeadline(time.Time{}) // the loop arms its own
	}
}

// rawSyscallConn is the TCP connection under a plain or TLS connection.
func rawSyscallConn(c net.Conn) syscall.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, _ := c.(syscall.Conn)
	return sc
}

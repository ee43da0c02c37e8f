//go:build unix

package proxy

import (
	"net/http"
	"syscall"
)

// alive peeks at the socket without blocking: an idle HTTP/1.1 connection
// has nothing to read, so EOF (the peer closed it) or unexpected bytes
// (a TLS close_notify, a stray response) mean it must not be reused.
func (c *h1Conn) alive() bool {
	if c.rc == nil {
		return true
	}
	live := false
	var b [1]byte
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		live = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK //nolint:errorlint // raw errno
		return true
	})
	return err == nil && live
}

// sendThenAwait writes the request r (with writeRequest) and returns
// once the connection has something to read (or its deadline passed, or
// it failed), so that the read which follows finds the response instead
// of first making a read system call that finds nothing (EAGAIN) before
// parking: one system call less per request on each leg.
//
// It is safe because the wait begins before the request is written:
// RawConn.Read resets the poller's readiness and then calls the callback,
// which writes the request and asks to wait; every byte of the response
// arrives after that write, and each arrival is a new edge for the
// poller, so no wake-up can be lost. Bytes the peer sent earlier (a TLS
// session ticket, a stray response) are still read afterwards, as before.
// A peer that never answers is cut by the response-header deadline the
// caller has set. Bytes already buffered above the socket make waiting
// pointless: then the request is only written.
func (c *h1Conn) sendThenAwait(r *http.Request, host string) error {
	if c.rc == nil || c.br.Buffered() > 0 {
		return c.send(r, host)
	}
	o := &c.out
	o.r, o.host, o.sent, o.err = r, host, false, nil
	err := c.rc.Read(c.await)
	sent, serr := o.sent, o.err
	o.r, o.host, o.err = nil, "", nil // nothing of the request stays pinned by the idle connection
	if serr != nil {
		return serr
	}
	if err != nil && !sent {
		return c.send(r, host) // the poller refused to wait (e.g. no deadline support): plain path
	}
	return err
}

// awaitStep is sendThenAwait's poller callback: the first call writes the
// request and asks to wait; the next means readable (or woken for an
// error the next read reports).
func (c *h1Conn) awaitStep(uintptr) bool {
	o := &c.out
	if o.sent {
		return true
	}
	o.sent = true
	o.err = c.send(o.r, o.host)
	return o.err != nil
}

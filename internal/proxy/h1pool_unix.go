//go:build unix

package proxy

import "syscall"

// alive peeks at the socket without blocking: an idle HTTP/1.1 connection
// has nothing to read, so EOF (the peer closed it) or unexpected bytes
// (a TLS close_notify, a stray response) mean it must not be reused.
func (c *h1Conn) alive() bool {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	live := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		live = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK //nolint:errorlint // raw errno
		return true
	})
	return err == nil && live
}

//go:build !linux

package proxy

// watchGone is a no-op outside Linux (see h1watch_linux.go): a client that
// went away is noticed when the response is written.
func (c *h1ServerConn) watchGone() (stop func()) { return func() {} }

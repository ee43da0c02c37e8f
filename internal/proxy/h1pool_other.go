//go:build !unix

package proxy

// alive cannot peek here; a dead connection is found by the request that
// uses it (and retried once when the request has no body).
func (c *h1Conn) alive() bool { return true }

// sendThenAwait only sends here (see h1pool_unix.go).
func (c *h1Conn) sendThenAwait(send func() error) error { return send() }

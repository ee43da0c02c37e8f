//go:build !unix

package proxy

import "net/http"

// alive cannot peek here; a dead connection is found by the request that
// uses it (and retried once when the request has no body).
func (c *h1Conn) alive() bool { return true }

// sendThenAwait only sends here (see h1pool_unix.go).
func (c *h1Conn) sendThenAwait(r *http.Request, host string) error { return c.send(r, host) }

// awaitStep is not used here.
func (c *h1Conn) awaitStep(uintptr) bool { return true }

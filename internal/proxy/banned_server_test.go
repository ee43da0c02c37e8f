package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestBannedServerIsRefused is issue 13 item 5 (b): once the control plane
// bans a server identity, the calling sidecar sends it nothing, neither a
// new request over a pooled connection nor a handshake to an endpoint it
// still knows; an unban restores the route.
func TestBannedServerIsRefused(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c := &http.Client{}
	get := func(path string) int {
		t.Helper()
		res, err := c.Get(m.outURL(path))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if code := get("/before"); code != http.StatusOK {
		t.Fatalf("before the ban: %d", code)
	}
	hits := app.hits.Load()

	// The endpoint stays known (the registry has not caught up yet) and a
	// pooled connection to it is open.
	m.front.SetBanned([]spiffeid.ID{spiffeid.RequireFromString(catalogID)})
	for _, path := range []string{"/after", "/again"} {
		if code := get(path); code != http.StatusForbidden {
			t.Errorf("GET %s to a banned server: %d, want 403", path, code)
		}
	}
	if got := app.hits.Load(); got != hits {
		t.Errorf("the banned server's app got %d requests after the ban", got-hits)
	}
	// The handshake itself refuses the banned identity.
	u := (*m.front.upstreams.Load())["catalog"]
	conn, err := u.pool.dial(context.Background(), m.cat.InboundAddr().String())
	if err == nil {
		conn.Close()
		t.Fatal("handshake with a banned server identity succeeded")
	}
	if !errors.Is(err, errBannedServer) {
		t.Errorf("handshake error %v, want %v", err, errBannedServer)
	}

	m.front.SetBanned(nil)
	if code := get("/unbanned"); code != http.StatusOK {
		t.Errorf("after the unban: %d, want 200", code)
	}
}

package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"meshward.dev/meshward/internal/mtls"
)

// TestSlowloris: a client that never finishes its headers is cut off by
// the read-header timeout, on the plaintext side and on an inbound mTLS
// HTTP/1.1 connection, and the limit is counted.
func TestSlowloris(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, timeouts: Timeouts{ReadHeader: 100 * time.Millisecond}})
	dials := map[string]func() (net.Conn, error){
		"outbound": func() (net.Conn, error) { return net.Dial("tcp", m.front.UpstreamAddr("catalog").String()) },
		"inbound": func() (net.Conn, error) {
			return tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP1))
		},
	}
	for name, dial := range dials {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: catalog\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		// The server closes the connection; the test's deadline is only a
		// safety net, far above the 100ms limit.
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("%s: connection not closed by the server: %v", name, err)
		}
		if len(b) != 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
			t.Errorf("%s: unexpected answer %q", name, b)
		}
		c.Close()
	}
	reg := map[string]func() float64{
		"outbound": func() float64 {
			return counter(t, m.frontReg, "meshward_limit_rejections_total", map[string]string{"limit": limitReadHeader})
		},
		"inbound": func() float64 {
			return counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitReadHeader})
		},
	}
	for name, get := range reg {
		waitFor(t, func() bool { return get() >= 1 })
		_ = name
	}
	if app.hits.Load() != 0 {
		t.Error("a slow request reached the app")
	}
}

// TestHeaderBytesCounted: the 431 answer is counted as a limit rejection.
func TestHeaderBytesCounted(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, limits: Limits{MaxHeaderBytes: 1024}})
	req, _ := http.NewRequest(http.MethodGet, m.outURL("/x"), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 8<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", res.StatusCode)
	}
	if got := counter(t, m.frontReg, "meshward_limit_rejections_total", map[string]string{"limit": limitHeaderBytes}); got != 1 {
		t.Errorf("header_bytes rejections %v, want 1", got)
	}
}

// TestRapidReset opens streams and cancels them at once (CVE-2023-44487
// pattern) on an authenticated HTTP/2 connection: past the limit the
// sidecar closes the connection.
func TestRapidReset(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, limits: Limits{MaxResetsPerConnMinute: 5}})
	c, err := tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "catalog"}, {":path", "/slow"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	closed := false
	const maxStreams = 2000 // bounded: the limit is 5
	for id := uint32(1); id < 2*maxStreams; id += 2 {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			closed = true
			break
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			closed = true
			break
		}
	}
	if !closed {
		// Drain what the server sent until it closes the connection.
		for {
			if _, err := fr.ReadFrame(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("connection still open after the reset flood")
				}
				break
			}
		}
	}
	got := counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitRapidReset}) +
		counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitH2Protocol})
	if got == 0 {
		t.Error("no rapid-reset or HTTP/2 protocol rejection counted")
	}
	t.Logf("rapid reset rejections %v, h2 protocol %v, closed while writing %v",
		counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitRapidReset}),
		counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitH2Protocol}), closed)
}

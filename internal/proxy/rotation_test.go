package proxy

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/testpki"
)

// TestRotationUnderLoad rotates both sidecars' short-lived SVIDs, then the
// root (with an overlap in the bundle), while workers send a bounded steady
// stream of requests. No request may fail, and new handshakes must use the
// new certificates.
func TestRotationUnderLoad(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	up := (*m.front.upstreams.Load())["catalog"]
	// A TCP mesh alongside: one mTLS connection per stream, so every TCP
	// round trip is a new handshake during the rotations.
	tcpAddr, _ := tcpEchoApp(t)
	tm := newMesh(t, meshOpts{appAddr: tcpAddr, appProto: ProtocolTCP})
	fid, cid := spiffeid.RequireFromString(frontendID), spiffeid.RequireFromString(catalogID)
	short := func(ca *testpki.CA, id spiffeid.ID) testpki.Leaf {
		now := time.Now()
		return testpki.Leaf{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(2 * time.Minute)}
	}

	const workers, perWorker = 4, 150
	var done, failed atomic.Int64
	var firstErr atomic.Value
	c := &http.Client{Timeout: testTimeout}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				res, err := c.Get(m.outURL("/load"))
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = &statusErr{res.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		})
	}
	const tcpWorkers, tcpPerWorker = 2, 60
	var tcpFailed atomic.Int64
	var tcpFirstErr atomic.Value
	for range tcpWorkers {
		wg.Go(func() {
			for range tcpPerWorker {
				if err := tcpRoundTrip(tm.front.UpstreamAddr("catalog").String(), "ping"); err != nil {
					tcpFailed.Add(1)
					tcpFirstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	// waitProgress blocks until n more requests completed (or all did).
	waitProgress := func(n int64) {
		target := done.Load() + n
		for done.Load() < target && done.Load() < workers*perWorker {
			time.Sleep(time.Millisecond)
		}
	}

	ca := m.ca
	rotations := 0
	rotate := func(ca, tcpCA *testpki.CA) {
		t.Helper()
		m.frontSrc.SetSVID(ca.IssueSVID(t, fid, short(ca, fid)))
		next := ca.IssueSVID(t, cid, short(ca, cid))
		m.catSrc.SetSVID(next)
		up.h2.CloseIdleConnections() // idle ones only: busy connections stay
		tm.frontSrc.SetSVID(tcpCA.IssueSVID(t, fid, short(tcpCA, fid)))
		tm.catSrc.SetSVID(tcpCA.IssueSVID(t, cid, short(tcpCA, cid)))
		rotations++
		// The very next handshake presents the new certificate.
		conn, err := tlsDial(context.Background(), m.cat.InboundAddr().String(), sidecarTLS(t, ca, frontendID, mtls.ALPNHTTP2))
		if err != nil {
			t.Fatalf("handshake right after rotation %d: %v", rotations, err)
		}
		if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(next.Certificates[0].SerialNumber) != 0 {
			t.Errorf("rotation %d: next handshake presented serial %v, want the new %v", rotations, got, next.Certificates[0].SerialNumber)
		}
		conn.Close()
	}
	callsBefore := tm.frontSrc.SVIDCalls.Load()
	for range 4 {
		waitProgress(40)
		rotate(ca, tm.ca)
	}
	// Root rotation: trust both, move the SVIDs to the new root, then drop
	// the old one.
	newCA := testpki.NewCA(t, td)
	both := x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{ca.Cert, newCA.Cert})
	tcpBoth := x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{tm.ca.Cert, newCA.Cert})
	for _, src := range []*mtlstest.Source{m.frontSrc, m.catSrc} {
		src.SetBundles(both)
	}
	for _, src := range []*mtlstest.Source{tm.frontSrc, tm.catSrc} {
		src.SetBundles(tcpBoth)
	}
	waitProgress(40)
	rotate(newCA, newCA)
	waitProgress(40)
	for _, src := range []*mtlstest.Source{m.frontSrc, m.catSrc, tm.frontSrc, tm.catSrc} {
		src.SetBundles(newCA.Bundle())
	}
	up.h2.CloseIdleConnections()
	waitProgress(40)
	rotate(newCA, newCA)
	wg.Wait()

	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed during rotation; first: %v", f, workers*perWorker, firstErr.Load())
	}
	if got := app.hits.Load(); got != workers*perWorker {
		t.Errorf("app got %d requests, want %d", got, workers*perWorker)
	}
	if f := tcpFailed.Load(); f != 0 {
		t.Fatalf("%d of %d TCP connections failed during rotation; first: %v", f, tcpWorkers*tcpPerWorker, tcpFirstErr.Load())
	}
	if calls := tm.frontSrc.SVIDCalls.Load() - callsBefore; calls < tcpWorkers*tcpPerWorker {
		t.Errorf("client SVID read %d times for %d TCP connections: not read per handshake", calls, tcpWorkers*tcpPerWorker)
	}
	// A fresh handshake sees catalog's current certificate, from the new root.
	cfg := sidecarTLS(t, newCA, frontendID, mtls.ALPNHTTP2)
	conn, err := tlsDial(context.Background(), m.cat.InboundAddr().String(), cfg)
	if err != nil {
		t.Fatalf("handshake with the rotated sidecar: %v", err)
	}
	defer conn.Close()
	cur, _ := m.catSrc.GetX509SVID()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(cur.Certificates[0].SerialNumber) != 0 {
		t.Errorf("catalog presented serial %v, want the current %v", got, cur.Certificates[0].SerialNumber)
	}
	// The old root is gone from the bundle: its certificates are refused.
	if _, err := tlsDial(context.Background(), m.cat.InboundAddr().String(), sidecarTLS(t, ca, frontendID, mtls.ALPNHTTP2)); err == nil {
		t.Error("a certificate from the retired root still handshakes")
	}
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return http.StatusText(e.code) }

// TestGracefulDrain: cancelling Run stops accepting at once, lets the
// in-flight request finish, then Run returns.
func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	app := newEchoApp(t, false, map[string]http.Handler{"/slow": slow})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	outAddr := m.front.UpstreamAddr("catalog").String()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get(m.outURL("/slow"))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{string(b), err}
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { m.stop(); close(stopped) }()
	// New connections are refused once draining started.
	waitFor(t, func() bool {
		c, err := dialTCP(outAddr)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case <-stopped:
		t.Fatal("Run returned with a request in flight")
	default:
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	<-stopped
}

func tcpRoundTrip(addr, msg string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != strings.ToUpper(msg) {
		return fmt.Errorf("echo %q, want %q", b, strings.ToUpper(msg))
	}
	return nil
}

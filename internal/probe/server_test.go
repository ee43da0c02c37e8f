package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/testpki"
)

// svidCert turns an SVID into a certificate for crypto/tls.
func svidCert(s *x509svid.SVID) tls.Certificate {
	c := tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, x := range s.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// startTLSServer serves cfg on a loopback port: each connection is
// handshaken, then gets "ok\n" and is closed. It returns the target.
func startTLSServer(t *testing.T, cfg *tls.Config) Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := tls.Server(c, cfg)
				if err := tc.HandshakeContext(ctx); err != nil {
					return
				}
				buf := make([]byte, 512)
				if _, err := tc.Read(buf); err != nil && !errors.Is(err, io.EOF) {
					return
				}
				_, _ = io.WriteString(tc, "ok\n")
			}()
		}
	}()
	return targetOf(t, ln.Addr().String())
}

func targetOf(t *testing.T, addr string) Target {
	t.Helper()
	tg, err := ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// meshServer is a server that behaves like a meshward sidecar's inbound
// listener: TLS 1.3 only, an X.509-SVID, client certificates required and
// verified against the mesh's bundle.
type meshServer struct {
	target Target
	root   *testpki.CA
	inter  *testpki.CA
	svid   *x509svid.SVID
}

func startMeshServer(t *testing.T) meshServer {
	t.Helper()
	root := testpki.NewCA(t, "shop.test")
	inter := root.Intermediate(t)
	svid := inter.SVID(t, "spiffe://shop.test/ns/default/sa/payments")
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{svidCert(svid)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    root.Pool(),
	}
	// Intermediates of client SVIDs come in the client's chain.
	return meshServer{target: startTLSServer(t, cfg), root: root, inter: inter, svid: svid}
}

// startPlainHTTP is a plaintext HTTP server.
func startPlainHTTP(t *testing.T) Target {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	}))
	t.Cleanup(srv.Close)
	return targetOf(t, srv.Listener.Addr().String())
}

// startTLSNoClientAuth is an HTTPS server that never asks for a client
// certificate, with a certificate from ca that has no SPIFFE ID.
func startTLSNoClientAuth(t *testing.T, ca *testpki.CA) Target {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCert(t, testpki.Leaf{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return targetOf(t, srv.Listener.Addr().String())
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	p, _ := strconv.Atoi(port)
	return Target{Host: "127.0.0.1", Port: uint16(p)}
}

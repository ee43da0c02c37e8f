package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/testpki"
)

const (
	serverID = "spiffe://shop.local/ns/default/sa/catalog"
	clientID = "spiffe://shop.local/ns/default/sa/frontend"
)

type result struct {
	serverErr, clientErr error
	peer                 spiffeid.ID // as seen by the server
	serverSerial         string      // as seen by the client
	alpn                 string
}

// handshake runs one TLS handshake over a real loopback socket.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type srvRes struct {
		err  error
		peer spiffeid.ID
	}
	done := make(chan srvRes, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- srvRes{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			done <- srvRes{err: err}
			return
		}
		id, err := mtls.PeerID(tc.ConnectionState())
		// Read until the client closes so its handshake can finish.
		_, _ = tc.Read(make([]byte, 1))
		done <- srvRes{err: err, peer: id}
	}()
	var r result
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, client)
	r.clientErr = tc.HandshakeContext(ctx)
	if r.clientErr == nil {
		// In TLS 1.3 the server verifies the client cert after the client
		// finished; a write+read round trip surfaces the server's alert.
		_, _ = tc.Write([]byte{0})
		cs := tc.ConnectionState()
		r.serverSerial = cs.PeerCertificates[0].SerialNumber.String()
		r.alpn = cs.NegotiatedProtocol
	}
	tc.Close()
	s := <-done
	r.serverErr, r.peer = s.err, s.peer
	return r
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "shop.local")
	inter := ca.Intermediate(t)
	otherTD := testpki.NewCA(t, "evil.local")
	otherCA := testpki.NewCA(t, "shop.local") // same name, different key
	td := ca.TrustDomain
	sid := spiffeid.RequireFromString(serverID)
	cid := spiffeid.RequireFromString(clientID)
	now := time.Now()

	serverSrc := mtlstest.NewSource(inter.SVID(t, serverID), ca.Bundle())
	goodClient := mtlstest.NewSource(inter.SVID(t, clientID), ca.Bundle())

	tests := []struct {
		name         string
		serverSVID   *x509svid.SVID       // default: serverSrc's
		serverBundle []*x509bundle.Bundle // default: ca
		clientSVID   *x509svid.SVID       // nil: no client certificate
		clientWant   spiffeid.ID          // default: serverID
		clientTLS12  bool
		clientALPN   []string
		wantServer   string // FailureReason of the server error, "" = ok
		wantClient   string // FailureReason of the client error, "" = ok
	}{
		{name: "ok", clientSVID: goodClient.SVIDOrNil()},
		{name: "ok through intermediate from root-only bundle", clientSVID: ca.SVID(t, clientID)},
		{name: "no client certificate", wantServer: mtls.ReasonNoClientCert},
		{name: "other trust domain", clientSVID: otherTD.SVID(t, "spiffe://evil.local/ns/default/sa/frontend"), wantServer: mtls.ReasonTrustDomain},
		{
			name:         "other trust domain even when its bundle is known",
			serverBundle: []*x509bundle.Bundle{ca.Bundle(), otherTD.Bundle()},
			clientSVID:   otherTD.SVID(t, "spiffe://evil.local/ns/default/sa/frontend"),
			wantServer:   mtls.ReasonUnauthorized,
		},
		{name: "other CA same trust domain name", clientSVID: otherCA.SVID(t, clientID), wantServer: mtls.ReasonUntrusted},
		{
			name:       "expired client certificate",
			clientSVID: ca.IssueSVID(t, cid, testpki.Leaf{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Minute)}),
			wantServer: mtls.ReasonExpired,
		},
		{
			name:       "not yet valid client certificate",
			clientSVID: ca.IssueSVID(t, cid, testpki.Leaf{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}),
			wantServer: mtls.ReasonExpired,
		},
		{
			name:       "server with a stolen certificate of another service",
			serverSVID: ca.SVID(t, "spiffe://shop.local/ns/default/sa/payments"),
			clientSVID: goodClient.SVIDOrNil(),
			wantClient: mtls.ReasonUnauthorized,
		},
		{
			name:       "server with the right name from another CA",
			serverSVID: otherCA.SVID(t, serverID),
			clientSVID: goodClient.SVIDOrNil(),
			wantClient: mtls.ReasonUntrusted,
		},
		{
			name:       "expired server certificate",
			serverSVID: ca.IssueSVID(t, sid, testpki.Leaf{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Minute)}),
			clientSVID: goodClient.SVIDOrNil(),
			wantClient: mtls.ReasonExpired,
		},
		{
			name:       "client certificate issued for serving only",
			clientSVID: ca.IssueSVID(t, cid, testpki.Leaf{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}),
			wantServer: mtls.ReasonKeyUsage,
		},
		{
			name:       "client certificate without extended key usage",
			clientSVID: ca.IssueSVID(t, cid, testpki.Leaf{NoExtKeyUsage: true}),
			wantServer: mtls.ReasonKeyUsage,
		},
		{
			name:       "server certificate issued for clients only",
			serverSVID: ca.IssueSVID(t, sid, testpki.Leaf{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}),
			clientSVID: goodClient.SVIDOrNil(),
			wantClient: mtls.ReasonKeyUsage,
		},
		{name: "TLS 1.2 client", clientSVID: goodClient.SVIDOrNil(), clientTLS12: true, wantServer: mtls.ReasonProtocol, wantClient: mtls.ReasonProtocol},
		{name: "ALPN mismatch", clientSVID: goodClient.SVIDOrNil(), clientALPN: []string{mtls.ALPNTCP}, wantServer: mtls.ReasonProtocol, wantClient: mtls.ReasonProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ssrc := mtlstest.NewSource(serverSrc.SVIDOrNil(), ca.Bundle())
			if tc.serverSVID != nil {
				ssrc.SetSVID(tc.serverSVID)
			}
			if tc.serverBundle != nil {
				ssrc.SetBundles(tc.serverBundle...)
			}
			csrc := mtlstest.NewSource(tc.clientSVID, ca.Bundle())
			want := sid
			if !tc.clientWant.IsZero() {
				want = tc.clientWant
			}
			scfg := mtls.ServerConfig(ssrc, ssrc, mtls.AuthorizeMemberOf(td), mtls.Options{NextProtos: []string{mtls.ALPNHTTP2}})
			alpn := []string{mtls.ALPNHTTP2}
			if tc.clientALPN != nil {
				alpn = tc.clientALPN
			}
			ccfg := mtls.ClientConfig(csrc, csrc, mtls.AuthorizeID(want), mtls.Options{NextProtos: alpn})
			if tc.clientSVID == nil {
				ccfg.GetClientCertificate = nil
			}
			if tc.clientTLS12 {
				ccfg.MinVersion, ccfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			}
			r := handshake(t, scfg, ccfg)
			if tc.wantServer == "" && tc.wantClient == "" {
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("handshake failed: server %v, client %v", r.serverErr, r.clientErr)
				}
				if r.peer != cid {
					t.Errorf("server saw peer %v, want %v", r.peer, cid)
				}
				if r.alpn != mtls.ALPNHTTP2 {
					t.Errorf("ALPN %q, want h2", r.alpn)
				}
				return
			}
			if tc.wantServer != "" {
				if r.serverErr == nil {
					t.Fatalf("server accepted, want refusal %s", tc.wantServer)
				}
				if got := mtls.FailureReason(r.serverErr); got != tc.wantServer {
					t.Errorf("server reason %q (%v), want %q", got, r.serverErr, tc.wantServer)
				}
			}
			if tc.wantClient != "" {
				if r.clientErr == nil {
					t.Fatalf("client accepted, want refusal %s", tc.wantClient)
				}
				if got := mtls.FailureReason(r.clientErr); got != tc.wantClient {
					t.Errorf("client reason %q (%v), want %q", got, r.clientErr, tc.wantClient)
				}
			}
		})
	}
}

func TestRotationAppliesToNextHandshake(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "shop.local")
	sid := spiffeid.RequireFromString(serverID)
	ssrc := mtlstest.NewSource(ca.SVID(t, serverID), ca.Bundle())
	csrc := mtlstest.NewSource(ca.SVID(t, clientID), ca.Bundle())
	scfg := mtls.ServerConfig(ssrc, ssrc, mtls.AuthorizeMemberOf(ca.TrustDomain), mtls.Options{})
	ccfg := mtls.ClientConfig(csrc, csrc, mtls.AuthorizeID(sid), mtls.Options{})

	first := handshake(t, scfg, ccfg)
	if first.serverErr != nil || first.clientErr != nil {
		t.Fatalf("first handshake: %v / %v", first.serverErr, first.clientErr)
	}
	rotated := ca.SVID(t, serverID)
	ssrc.SetSVID(rotated)
	second := handshake(t, scfg, ccfg)
	if second.clientErr != nil {
		t.Fatalf("second handshake: %v", second.clientErr)
	}
	if want := rotated.Certificates[0].SerialNumber.String(); second.serverSerial != want {
		t.Errorf("after rotation client saw serial %s, want the new %s", second.serverSerial, want)
	}

	// A new root: the bundle moves to it, the old SVIDs stop verifying, and
	// new SVIDs from the new root verify, with the same configs.
	newCA := testpki.NewCA(t, "shop.local")
	ssrc.SetBundles(newCA.Bundle())
	stale := handshake(t, scfg, ccfg)
	if stale.serverErr == nil {
		t.Fatal("server accepted a client whose root left the bundle")
	}
	csrc.SetBundles(newCA.Bundle())
	ssrc.SetSVID(newCA.SVID(t, serverID))
	csrc.SetSVID(newCA.SVID(t, clientID))
	fresh := handshake(t, scfg, ccfg)
	if fresh.serverErr != nil || fresh.clientErr != nil {
		t.Fatalf("handshake after root rotation: %v / %v", fresh.serverErr, fresh.clientErr)
	}
}

func TestInjectedClockExpires(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "shop.local")
	sid := spiffeid.RequireFromString(serverID)
	src := mtlstest.NewSource(ca.SVID(t, serverID), ca.Bundle()) // valid ±1h
	csrc := mtlstest.NewSource(ca.SVID(t, clientID), ca.Bundle())
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	scfg := mtls.ServerConfig(src, src, mtls.AuthorizeMemberOf(ca.TrustDomain), mtls.Options{Now: later})
	ccfg := mtls.ClientConfig(csrc, csrc, mtls.AuthorizeID(sid), mtls.Options{})
	r := handshake(t, scfg, ccfg)
	if r.serverErr == nil {
		t.Fatal("server accepted a client certificate expired by its clock")
	}
	if got := mtls.FailureReason(r.serverErr); got != mtls.ReasonExpired {
		t.Errorf("reason %q (%v), want expired", got, r.serverErr)
	}
}

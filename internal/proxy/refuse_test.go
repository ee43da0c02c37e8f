package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/testpki"
)

// TestInboundRefusesAtHandshake: nothing but a TLS 1.3 client with an SVID
// of this trust domain, chaining to the current bundle, gets a request to
// the app.
func TestInboundRefusesAtHandshake(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	inbound := m.cat.InboundAddr().String()
	otherTD := testpki.NewCA(t, "evil.local")
	otherCA := testpki.NewCA(t, td)
	now := time.Now()
	expired := m.ca.IssueSVID(t, spiffeid.RequireFromString(frontendID), testpki.Leaf{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Second)})

	raw := func(payload string) func(t *testing.T) error {
		return func(t *testing.T) error {
			c, err := net.Dial("tcp", inbound)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if _, err := c.Write([]byte(payload)); err != nil {
				return err
			}
			b, _ := io.ReadAll(c)
			if strings.Contains(string(b), "HTTP/1.1 200") || strings.Contains(string(b), "body=") {
				t.Errorf("plaintext got an HTTP answer: %q", b)
			}
			return errRefused
		}
	}
	viaTLS := func(cfg *tls.Config) func(t *testing.T) error {
		return func(t *testing.T) error {
			res, err := h2Client(cfg).Get("https://" + inbound + "/secret")
			if err == nil {
				res.Body.Close()
			}
			return err
		}
	}
	noCert := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{"h2"}} //nolint:gosec // the attacker's client
	withSVID := func(ca *testpki.CA, svid *testpkiSVID) *tls.Config {
		src := mtlstest.NewSource(svid, ca.Bundle(), m.ca.Bundle())
		return mtls.ClientConfig(src, src, mtls.AuthorizeID(spiffeid.RequireFromString(catalogID)), mtls.Options{NextProtos: []string{mtls.ALPNHTTP2}})
	}
	tls12 := sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tcpALPN := sidecarTLS(t, m.ca, frontendID, mtls.ALPNTCP) // L4 to an L7 service would bypass request policy

	tests := []struct {
		name   string
		try    func(t *testing.T) error
		reason string // meshward_tls_handshake_failures_total reason
	}{
		{"plaintext HTTP", raw("GET /secret HTTP/1.1\r\nHost: catalog\r\n\r\n"), mtls.ReasonNotTLS},
		{"raw TCP bytes", raw("\x00\x01hello\r\n\r\n"), mtls.ReasonNotTLS},
		{"TLS without client certificate", viaTLS(noCert), mtls.ReasonNoClientCert},
		{"client cert from another trust domain", viaTLS(withSVID(otherTD, otherTD.SVID(t, "spiffe://evil.local/ns/default/sa/frontend"))), mtls.ReasonTrustDomain},
		{"client cert from another CA", viaTLS(withSVID(otherCA, otherCA.SVID(t, frontendID))), mtls.ReasonUntrusted},
		{"expired client cert", viaTLS(withSVID(m.ca, expired)), mtls.ReasonExpired},
		{"TLS 1.2", viaTLS(tls12), mtls.ReasonProtocol},
		{"TCP ALPN to an HTTP service", func(t *testing.T) error {
			c, err := tls.Dial("tcp", inbound, tcpALPN)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Read(make([]byte, 1))
			return err
		}, mtls.ReasonProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, m.catReg, "meshward_tls_handshake_failures_total", map[string]string{"reason": tc.reason})
			if err := tc.try(t); err == nil {
				t.Fatal("request succeeded, want refusal")
			}
			// The server counts the failure once its handshake returned;
			// the client may see the alert first.
			waitFor(t, func() bool {
				return counter(t, m.catReg, "meshward_tls_handshake_failures_total", map[string]string{"reason": tc.reason}) > before
			})
		})
	}
	if n := app.hits.Load(); n != 0 {
		t.Errorf("app received %d requests from refused clients", n)
	}
}

type testpkiSVID = x509svid.SVID

// waitFor polls cond (no fixed sleeps: it yields until cond or timeout).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOutboundRefusesWrongServerIdentity: a sidecar holding a valid
// certificate of another service cannot answer for catalog.
func TestOutboundRefusesWrongServerIdentity(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	// An impostor: a real sidecar, but with the payments identity.
	imp := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	imp.catSrc.SetSVID(m.ca.SVID(t, paymentsID))
	imp.catSrc.SetBundles(m.ca.Bundle())
	if err := m.front.SetEndpoints("catalog", []string{imp.cat.InboundAddr().String()}); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(m.outURL("/x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.StatusCode)
	}
	if n := app.hits.Load(); n != 0 {
		t.Errorf("impostor forwarded %d requests", n)
	}
	if got := counter(t, m.frontReg, "meshward_tls_handshake_failures_total", map[string]string{"side": "outbound", "reason": mtls.ReasonUnauthorized}); got == 0 {
		t.Error("no outbound unauthorized handshake failure counted")
	}
}

// TestSpoofedIdentityFromPeer: a legitimate peer sidecar (or anyone holding
// an SVID) cannot claim another identity in the header.
func TestSpoofedIdentityFromPeer(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	c := h2Client(sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2))
	req, _ := http.NewRequest(http.MethodGet, "https://"+m.cat.InboundAddr().String()+"/x", nil)
	req.Header.Add(PeerIdentityHeader, paymentsID)
	req.Header.Add(strings.ToLower(PeerIdentityHeader), paymentsID)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-App-Peer"); got != frontendID {
		t.Errorf("app saw %q, want the verified %q", got, frontendID)
	}
}

// TestConnectionNamingIdentityHeader: a caller cannot make hop-by-hop
// removal strip the identity header meshward sets for the app.
func TestConnectionNamingIdentityHeader(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	code, body := m.inboundRaw(t, "GET /who HTTP/1.1\r\nHost: catalog\r\nConnection: keep-alive, x-meshward-peer-identity\r\n\r\n")
	if code != http.StatusBadRequest {
		t.Errorf("status %d %q, want 400", code, body)
	}
	if seen := app.seen(); len(seen) != 0 {
		t.Errorf("app received %v", seen)
	}
}

// TestRequestSmuggling sends conflicting Content-Length/Transfer-Encoding as
// raw bytes: on the app's plaintext outbound listener and on a real inbound
// mTLS connection. Both must answer 400, close, and forward nothing.
func TestRequestSmuggling(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	attacks := []string{
		// CL.TE: a front end using Content-Length forwards the smuggled GET.
		"POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		// TE.CL ordering, a smuggled request in the body.
		"POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n26\r\nGET /admin HTTP/1.1\r\nHost: catalog\r\n\r\n\r\n0\r\n\r\n",
		// The same with a wrong chunk size: the refusal must not wait for
		// the rest of the body.
		"POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2b\r\nGET /admin HTTP/1.1\r\n",
		// Obfuscated Transfer-Encoding values.
		"POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\nabcd",
		"POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
		// Two different Content-Lengths.
		"POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
	}
	dialers := map[string]func() (net.Conn, error){
		"outbound plaintext": func() (net.Conn, error) { return net.Dial("tcp", m.front.UpstreamAddr("catalog").String()) },
		"inbound mTLS": func() (net.Conn, error) {
			return tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP1))
		},
	}
	for name, dial := range dialers {
		for i, attack := range attacks {
			c, err := dial()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if _, err := io.WriteString(c, attack); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			code, body := readStatus(t, br)
			if code != http.StatusBadRequest && code != http.StatusNotImplemented {
				t.Errorf("%s attack %d: status %d %q, want 400 or 501", name, i, code, body)
			}
			// The connection is closed: nothing smuggled gets a response.
			if rest, _ := io.ReadAll(br); len(rest) != 0 {
				t.Errorf("%s attack %d: more after the refusal: %q", name, i, rest)
			}
			c.Close()
		}
	}
	if seen := app.seen(); len(seen) != 0 {
		t.Errorf("app received %v", seen)
	}
	// A well-formed request on the same kind of connection still works.
	c, err := dialers["inbound mTLS"]()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /ok HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if code, body := readStatus(t, bufio.NewReader(c)); code != http.StatusOK || body != "POST /ok body=abc" {
		t.Errorf("clean chunked request: %d %q", code, body)
	}
}

// TestPolicyAndBans: no policy denies; denies are 403; ambiguous paths are
// 400; a ban applies to the next request of a live connection.
func TestPolicyAndBans(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, noPolicy: true})
	c := &http.Client{Timeout: testTimeout}
	get := func(path string) (int, string) {
		t.Helper()
		res, err := c.Get(m.outURL(path))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/x"); code != http.StatusForbidden {
		t.Errorf("no policy: %d, want 403", code)
	}
	var seen *policy.Request
	m.cat.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
		seen = r
		return policy.Decision{Allow: strings.HasPrefix(r.HTTP.Path, "/public/"), Rule: "public-only"}
	}))
	if code, _ := get("/public/a"); code != http.StatusOK {
		t.Errorf("allowed path: %d", code)
	}
	if seen == nil || seen.Source.String() != frontendID || seen.Destination.Service != "catalog" || seen.HTTP.Method != "GET" {
		t.Errorf("policy saw %+v", seen)
	}
	if code, _ := get("/private"); code != http.StatusForbidden {
		t.Errorf("denied path: %d, want 403", code)
	}
	if n := counter(t, m.catReg, "meshward_policy_denies_total", map[string]string{"rule": "public-only", "decision": "deny"}); n != 1 {
		t.Errorf("meshward_policy_denies_total{rule=public-only} = %v, want 1", n)
	}
	// Normalization happens before policy: the dot-segment cannot escape
	// /public/, and the app receives the normalized path.
	if code, _ := get("/public/../private"); code != http.StatusForbidden {
		t.Errorf("dot-segment escape: %d, want 403", code)
	}
	res, err := c.Get(m.outURL("/public//%61b"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-App-Path"); got != "/public/ab" {
		t.Errorf("app saw path %q, want normalized /public/ab", got)
	}
	if code, _ := get("/public/%2e%2e%2fprivate"); code != http.StatusBadRequest {
		t.Errorf("encoded slash: %d, want 400", code)
	}

	// A ban reaches a live HTTP/2 connection between the sidecars.
	if code, _ := get("/public/before-ban"); code != http.StatusOK {
		t.Fatalf("before ban: %d", code)
	}
	m.cat.SetBanned([]spiffeid.ID{spiffeid.RequireFromString(frontendID)})
	if code, body := get("/public/after-ban"); code != http.StatusForbidden {
		t.Errorf("after ban: %d %q, want 403", code, body)
	}
	m.cat.SetBanned(nil)
	if code, _ := get("/public/after-unban"); code != http.StatusOK {
		t.Errorf("after unban: %d", code)
	}
}

// TestMaxConnsPerPeer: one identity cannot hold more than the limit.
func TestMaxConnsPerPeer(t *testing.T) {
	app := newEchoApp(t, false, nil)
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, limits: Limits{MaxConnsPerPeer: 2}})
	cfg := sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2)
	var clients []*http.Client
	for range 3 {
		clients = append(clients, h2Client(cfg)) // separate transports: separate connections
	}
	ok := 0
	for _, c := range clients {
		res, err := c.Get("https://" + m.cat.InboundAddr().String() + "/x")
		if err == nil {
			res.Body.Close()
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d connections served, want 2", ok)
	}
	if got := counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitConnsPerPeer}); got != 1 {
		t.Errorf("limit rejections %v, want 1", got)
	}
}

// TestHeaderLimits: oversized headers are refused with 431.
func TestHeaderLimits(t *testing.T) {
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
		t.Errorf("oversized headers: %d, want 431", res.StatusCode)
	}
	if app.hits.Load() != 0 {
		t.Error("oversized request reached the app")
	}
}

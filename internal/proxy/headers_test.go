package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c" //nolint:staticcheck // SA1019: the attack needs an app that accepts h2c upgrades
	"golang.org/x/net/http2/hpack"

	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/policy"
)

// events records what the catalog sidecar observed.
type events struct {
	mu sync.Mutex
	es []Event
}

func (e *events) observe(ev *Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.es = append(e.es, *ev)
}

// denied reports whether a deny with rule was observed.
func (e *events) denied(rule string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.es {
		if ev.Decision == "deny" && ev.Rule == rule {
			return true
		}
	}
	return false
}

// upgradeApp accepts h2c upgrades (x/net's h2c handler, as many Go apps
// still run) and "Upgrade: tcp" (then it echoes bytes, upper-cased), and
// records every request it serves, HTTP/2 ones inside an upgraded
// connection included. Like lenient servers, it takes an upgrade whose
// Connection field no longer names HTTP2-Settings (a proxy rewrote
// Connection; x/net's handler alone insists on it, and ReverseProxy sends
// only "Connection: Upgrade").
type upgradeApp struct {
	addr string
	mu   sync.Mutex
	seen []string // "<proto> <path> <identity>"
}

func newUpgradeApp(t *testing.T) *upgradeApp {
	t.Helper()
	a := &upgradeApp{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Proto+" "+r.URL.Path+" "+r.Header.Get(PeerIdentityHeader))
		a.mu.Unlock()
		if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = io.WriteString(c, strings.ToUpper(line))
			return
		}
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
	})
	//nolint:staticcheck // SA1019: the attack needs an app that accepts h2c upgrades; net/http alone takes only prior knowledge
	h2h := h2c.NewHandler(mux, &http2.Server{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("HTTP2-Settings") != "" && strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
		}
		h2h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

func (a *upgradeApp) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

// smuggleH2 speaks HTTP/2 on a connection the app switched to h2c: it asks
// for /admin, which policy denies, claiming payments' identity, and returns
// the :status it gets ("" for none).
func smuggleH2(c net.Conn, br *bufio.Reader) string {
	_, _ = io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, br)
	_ = fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "catalog"}, {":path", "/admin"}, {"x-meshward-peer-identity", paymentsID}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return ""
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, hf := range fields {
				if f.StreamID == 3 && hf.Name == ":status" {
					return hf.Value
				}
			}
		}
	}
}

// denyAdmin allows everything but /admin.
func denyAdmin() Decider {
	return deciderFunc(func(r *policy.Request) policy.Decision {
		if r.HTTP != nil && strings.HasPrefix(r.HTTP.Path, "/admin") {
			return policy.Decision{Policy: "test", Rule: "no-admin", Mode: "enforce"}
		}
		return policy.Decision{Allow: true, Policy: "test", Rule: "allow", Mode: "enforce"}
	})
}

// TestUpgradeRefused: an h2c upgrade (which would carry HTTP/2 requests
// to the app past policy, audit and identity stripping) is refused with
// 403 and a deny event, over a direct mTLS connection to the inbound side
// and through the caller's own outbound listener, although the app accepts
// h2c; so are an HTTP2-Settings field alone and an Upgrade protocol the
// service does not allow. The app sees none of these requests.
func TestUpgradeRefused(t *testing.T) {
	app := newUpgradeApp(t)
	var ev events
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, observer: ev.observe})
	m.cat.SetPolicy(denyAdmin())
	const settings = "AAMAAABkAARAAP__AAIAAAAA" // base64url SETTINGS payload, as curl --http2 sends it
	attacks := []struct {
		name, head, rule string
	}{
		{"h2c upgrade", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\n", ruleH2CUpgrade},
		// HTTP2-Settings not named in Connection: a proxy keeps it.
		{"h2c upgrade, settings kept", "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\n", ruleH2CUpgrade},
		{"h2c upgrade, mixed case", "Connection: upgrade, http2-settings\r\nUpgrade: H2C\r\nhttp2-settings: " + settings + "\r\n", ruleH2CUpgrade},
		{"h2c after websocket", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket, h2c\r\nHTTP2-Settings: " + settings + "\r\n", ruleH2CUpgrade},
		{"h2c in a second Upgrade field", "Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n", ruleH2CUpgrade},
		{"HTTP/2.0 upgrade", "Connection: Upgrade\r\nUpgrade: HTTP/2.0\r\n", ruleH2CUpgrade},
		{"HTTP2-Settings alone", "HTTP2-Settings: " + settings + "\r\n", ruleH2CUpgrade},
		{"HTTP2_Settings alone", "HTTP2_Settings: " + settings + "\r\n", ruleH2CUpgrade},
		{"tcp upgrade not allowed", "Connection: Upgrade\r\nUpgrade: tcp\r\n", ruleUpgradeForbidden},
	}
	dialers := map[string]func() (net.Conn, error){
		"inbound mTLS": func() (net.Conn, error) {
			return tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP1))
		},
		"outbound plaintext": func() (net.Conn, error) { return net.Dial("tcp", m.front.UpstreamAddr("catalog").String()) },
	}
	for dname, dial := range dialers {
		for _, a := range attacks {
			t.Run(dname+"/"+a.name, func(t *testing.T) {
				c, err := dial()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: catalog\r\n"+a.head+"\r\n")
				br := bufio.NewReader(c)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no response: %v", err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusSwitchingProtocols {
					if res.Header.Get("Upgrade") == "h2c" {
						t.Fatalf("h2c upgrade forwarded (101); a denied request inside it got :status %q", smuggleH2(c, br))
					}
					t.Fatalf("upgrade forwarded: 101 %s", res.Header.Get("Upgrade"))
				}
				if res.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d %q, want 403", res.StatusCode, body)
				}
				// (The refusing sidecar closes; an outbound side that only
				// relayed another's refusal has nothing to close for.)
				if (dname == "inbound mTLS" || a.rule == ruleH2CUpgrade) && !res.Close {
					t.Error("connection kept open after a refused upgrade")
				}
				// The outbound side refuses h2c by itself; anything else it
				// leaves to the upstream sidecar, whose deny is an event.
				if (dname == "inbound mTLS" || a.rule != ruleH2CUpgrade) && !ev.denied(a.rule) {
					t.Errorf("no deny event with rule %s", a.rule)
				}
			})
		}
	}
	// HTTP/2 has no Upgrade, but an HTTP2-Settings field is refused there
	// too (an HTTP/1.1 app would read it).
	req, _ := http.NewRequest(http.MethodGet, "https://"+m.cat.InboundAddr().String()+"/", nil)
	req.Header["http2_settings"] = []string{settings}
	res, err := h2Client(sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2)).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP/2 with http2_settings: %d, want 403", res.StatusCode)
	}
	if seen := app.requests(); len(seen) != 0 {
		t.Errorf("the app served %q", seen)
	}
}

// TestUpgradeAllowed: a protocol the service allows, and websocket, are
// forwarded, but only when the upgrade request passed policy.
func TestUpgradeAllowed(t *testing.T) {
	app := newUpgradeApp(t)
	var ev events
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, observer: ev.observe, allowUpgrades: []string{"TCP"}})
	m.cat.SetPolicy(denyAdmin())
	upgrade := func(path, proto string) (*http.Response, net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", m.front.UpstreamAddr("catalog").String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade\r\nUpgrade: "+proto+"\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res, c, br
	}
	res, c, br := upgrade("/pipe", "tcp")
	res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("allowed tcp upgrade: %d, want 101", res.StatusCode)
	}
	_, _ = io.WriteString(c, "hello\n")
	if got, _ := br.ReadString('\n'); got != "HELLO\n" {
		t.Errorf("through the upgraded connection: %q", got)
	}
	for _, proto := range []string{"tcp", "websocket"} {
		res, _, _ = upgrade("/admin", proto)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s upgrade of a denied request: %d, want 403", proto, res.StatusCode)
		}
	}
	if !ev.denied("no-admin") {
		t.Error("no policy deny event for the denied upgrade")
	}
	if seen := app.requests(); len(seen) != 1 || seen[0] != "HTTP/1.1 /pipe "+frontendID {
		t.Errorf("the app served %q, want only the allowed upgrade", seen)
	}
}

func TestAllowUpgradesValidated(t *testing.T) {
	for _, bad := range []string{"h2c", "H2C", "h2", "HTTP", "websocket/13", "", "a b"} {
		cfg := Config{Service: "s", Namespace: "default", InboundAddr: "127.0.0.1:0", AppAddr: "127.0.0.1:1", AppProtocol: ProtocolHTTP, AllowUpgrades: []string{bad}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "allowUpgrades[0]") {
			t.Errorf("allowUpgrades %q: %v, want an allowUpgrades[0] error", bad, err)
		}
	}
}

// whoHandler answers with every value of every field the app would read
// as the identity header (CGI-style: case and '_' folded).
var whoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var vals []string
	for k, vv := range r.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), PeerIdentityHeader) {
			vals = append(vals, vv...)
		}
	}
	slices.Sort(vals)
	_, _ = io.ReadAll(r.Body)
	fmt.Fprint(w, strings.Join(vals, ","))
})

// TestIdentityHeaderFolding: a caller's copy of the identity header under
// any spelling that folds to it ('_' for '-', any case) is stripped on
// HTTP/1.1 (the fast loop and net/http's server) and HTTP/2: the app sees
// the sidecar's value only.
func TestIdentityHeaderFolding(t *testing.T) {
	app := newEchoApp(t, false, map[string]http.Handler{"/who": whoHandler})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP})
	forged := []string{"X_Meshward_Peer_Identity", "x_meshward_peer_identity", "X-MESHWARD-PEER-IDENTITY", "x_Meshward-PEER_identity", "X-Meshward-Peer_Identity"}
	t.Run("HTTP/1.1", func(t *testing.T) {
		for _, name := range forged {
			for _, req := range []string{
				"GET /who HTTP/1.1\r\nHost: catalog\r\n" + name + ": " + paymentsID + "\r\n\r\n",
				"GET /who HTTP/1.1\r\nHost: catalog\r\n" + name + ": " + paymentsID + "\r\nX-Meshward-Peer-Identity: " + paymentsID + "\r\n\r\n",
				// chunked: net/http's server parses it, not the fast loop
				"POST /who HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n" + name + ": " + paymentsID + "\r\n\r\n1\r\na\r\n0\r\n\r\n",
			} {
				if code, body := m.inboundRaw(t, req); code != http.StatusOK || body != frontendID {
					t.Errorf("%s: %d, app saw %q, want only %q", name, code, body, frontendID)
				}
			}
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		c := h2Client(sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2))
		for _, name := range forged {
			req, _ := http.NewRequest(http.MethodGet, "https://"+m.cat.InboundAddr().String()+"/who", nil)
			req.Header[name] = []string{paymentsID} // as written: not canonicalized
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != frontendID {
				t.Errorf("%s: app saw %q, want only %q", name, body, frontendID)
			}
		}
	})
	t.Run("through the outbound listener", func(t *testing.T) {
		for _, name := range forged {
			code, body := m.outboundRaw(t, "GET /who HTTP/1.1\r\nHost: catalog\r\n"+name+": "+paymentsID+"\r\n\r\n")
			if code != http.StatusOK || body != frontendID {
				t.Errorf("%s: %d, app saw %q, want only %q", name, code, body, frontendID)
			}
		}
	})
}

func TestFoldEqual(t *testing.T) {
	tests := []struct {
		name, want string
		eq         bool
	}{
		{"X_Meshward_Peer_Identity", PeerIdentityHeader, true},
		{"x-meshward-peer-identity", PeerIdentityHeader, true},
		{"X-Meshward-Peer-Identit", PeerIdentityHeader, false},
		{"X-Meshward-Peer-Identitz", PeerIdentityHeader, false},
		{"X.Meshward-Peer-Identity", PeerIdentityHeader, false},
		{"Http2_settings", "HTTP2-Settings", true},
	}
	for _, tc := range tests {
		if got := foldEqual(tc.name, tc.want); got != tc.eq {
			t.Errorf("foldEqual(%q, %q) = %v, want %v", tc.name, tc.want, got, tc.eq)
		}
	}
}

// TestHeaderBudgetPerPeer: one identity sending the largest heads on many
// connections at once holds only its budget of header bytes in flight
// (429 beyond it), so it cannot take all of an app's capacity: another
// identity's request still gets through. The app serves 4 requests at a
// time (503 beyond), as apps with a worker pool do; the attacker holds 8
// requests of 60 KB heads open.
func TestHeaderBudgetPerPeer(t *testing.T) {
	const workers, attackers = 4, 8
	slots := make(chan struct{}, workers)
	release := make(chan struct{})
	var held sync.WaitGroup
	hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/hold" {
			held.Done()
			<-release
		}
		fmt.Fprint(w, "ok")
	})
	app := newEchoApp(t, false, map[string]http.Handler{"/hold": hold, "/work": hold})
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, limits: Limits{MaxHeaderBytesPerPeer: 128 << 10}})
	big := strings.Repeat("a", 60<<10)
	// Every attacker request ends up held by the app (held.Done in the
	// handler) or refused at once (held.Done below); after the release
	// the held ones answer too (answered).
	var answered sync.WaitGroup
	answered.Add(attackers)
	held.Add(attackers)
	for range attackers {
		go func() {
			defer answered.Done()
			code := 0
			if c, err := tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP1)); err == nil {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				_, _ = io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: catalog\r\nX-Big: "+big+"\r\n\r\n")
				if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					code = res.StatusCode
					res.Body.Close()
				}
			}
			if code != http.StatusOK {
				held.Done()
			}
		}()
	}
	waitCh(t, held.Wait)
	// payments, another identity, is served while the attack holds on.
	code, body := rawRoundTrip(t, func() (net.Conn, error) {
		return tls.Dial("tcp", m.cat.InboundAddr().String(), sidecarTLS(t, m.ca, paymentsID, mtls.ALPNHTTP1))
	}, "GET /work HTTP/1.1\r\nHost: catalog\r\nX-Big: "+big+"\r\n\r\n")
	if code != http.StatusOK {
		t.Errorf("another identity during the attack: %d %q, want 200", code, body)
	}
	if got := counter(t, m.catReg, "meshward_limit_rejections_total", map[string]string{"limit": limitPeerHeaders}); got < attackers-2 {
		t.Errorf("header budget rejections %v, want at least %d", got, attackers-2)
	}
	close(release)
	answered.Wait()
	// The map of identities empties with the requests.
	waitFor(t, func() bool { return m.cat.inbound.heads.peers() == 0 })
}

// waitCh runs wait, failing the test if it does not return in time.
func waitCh(t *testing.T, wait func()) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatal("timed out")
	}
}

// compileEngine compiles a MeshConfig (with extra spec lines) and a policy
// letting frontend GET anything on catalog.
func compileEngine(t *testing.T, meshSpec string) *policy.Engine {
	t.Helper()
	src := `apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: shop.local
` + meshSpec + `---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: catalog, namespace: default}
spec:
  target: catalog
  rules:
    - name: frontend-reads
      from: [{service: frontend}]
      to: [{methods: [GET]}]
`
	e, err := policy.Compile([]policy.File{{Name: "mesh.yaml", Data: []byte(src)}}, policy.Options{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRefuseOverrideHeaders: with MeshConfig refuseOverrideHeaders, a
// request carrying a method or URL override (any spelling folding to one)
// is refused with 400 and a deny event on HTTP/1.1 and HTTP/2: the GET
// policy allowed cannot become the DELETE or the /admin an app would
// serve. Without the switch they pass, as before.
func TestRefuseOverrideHeaders(t *testing.T) {
	app := newEchoApp(t, false, nil)
	var ev events
	m := newMesh(t, meshOpts{appAddr: app.addr, appProto: ProtocolHTTP, observer: ev.observe})
	overrides := []string{
		"X-HTTP-Method-Override: DELETE", "X-HTTP-Method: DELETE", "X-Method-Override: DELETE",
		"X-Original-URL: /admin", "X-Rewrite-URL: /admin",
		"x_http_method_override: DELETE", "X-ORIGINAL_URL: /admin",
	}
	h2 := h2Client(sidecarTLS(t, m.ca, frontendID, mtls.ALPNHTTP2))
	send := func(field string) (h1, h2code int) {
		t.Helper()
		h1, _ = m.inboundRaw(t, "GET /x HTTP/1.1\r\nHost: catalog\r\n"+field+"\r\n\r\n")
		name, value, _ := strings.Cut(field, ": ")
		req, _ := http.NewRequest(http.MethodGet, "https://"+m.cat.InboundAddr().String()+"/x", nil)
		req.Header[name] = []string{value}
		res, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return h1, res.StatusCode
	}

	m.cat.SetPolicy(compileEngine(t, ""))
	if c1, c2 := send(overrides[0]); c1 != http.StatusOK || c2 != http.StatusOK {
		t.Errorf("switch off: %d, %d; want 200 (unchanged default)", c1, c2)
	}
	m.cat.SetPolicy(compileEngine(t, "  refuseOverrideHeaders: true\n"))
	before := app.hits.Load()
	for _, f := range overrides {
		if c1, c2 := send(f); c1 != http.StatusBadRequest || c2 != http.StatusBadRequest {
			t.Errorf("%s: HTTP/1.1 %d, HTTP/2 %d; want 400", f, c1, c2)
		}
	}
	if n := app.hits.Load() - before; n != 0 {
		t.Errorf("%d requests with override headers reached the app", n)
	}
	if !ev.denied(ruleOverrideHeader) {
		t.Error("no deny event with rule override-header")
	}
	if c1, c2 := send("X-Other: 1"); c1 != http.StatusOK || c2 != http.StatusOK {
		t.Errorf("a plain request with the switch on: %d, %d; want 200", c1, c2)
	}
}

// FuzzUpgradeRefusal: whatever the Upgrade fields, one that offers h2c as
// x/net's h2c handler reads it (httpguts.HeaderValuesContainsToken, the
// independent oracle) is refused as h2c-upgrade, and one that is let
// through offers nothing but websocket and the allowed protocol.
func FuzzUpgradeRefusal(f *testing.F) {
	for _, s := range []string{"h2c", "websocket", "websocket, h2c", " H2C ", "tcp", "h2c/1", "HTTP/2.0", "websocket,\th2c", ",,", "my-tunnel"} {
		f.Add(s, "")
	}
	f.Add("tcp", "websocket")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		vv := []string{v1}
		if v2 != "" {
			vv = append(vv, v2)
		}
		got := upgradeRefusal(vv, []string{"tcp"})
		if httpguts.HeaderValuesContainsToken(vv, "h2c") && got != ruleH2CUpgrade {
			t.Fatalf("upgradeRefusal(%q) = %q, but it offers h2c", vv, got)
		}
		if got == "" {
			for _, v := range vv {
				for tok := range strings.SplitSeq(v, ",") {
					name, _, _ := strings.Cut(strings.TrimSpace(tok), "/")
					if n := strings.ToLower(strings.TrimSpace(name)); n != "" && n != "websocket" && n != "tcp" {
						t.Fatalf("upgradeRefusal(%q) let %q through", vv, name)
					}
				}
			}
		}
	})
}

// FuzzFoldEqual: on header names (ASCII tokens) foldEqual is "equal after
// '_' becomes '-', case folded" (strings.EqualFold as the oracle).
func FuzzFoldEqual(f *testing.F) {
	f.Add("X_Meshward_Peer_Identity")
	f.Add("x-meshward-peer-identity")
	f.Add("HTTP2_settings")
	f.Fuzz(func(t *testing.T, name string) {
		if !httpguts.ValidHeaderFieldName(name) {
			return
		}
		for _, want := range append([]string{"HTTP2-Settings"}, append(trustHeaders, OverrideHeaders...)...) {
			oracle := strings.EqualFold(strings.ReplaceAll(name, "_", "-"), want)
			if got := foldEqual(name, want); got != oracle {
				t.Fatalf("foldEqual(%q, %q) = %v, want %v", name, want, got, oracle)
			}
		}
	})
}

//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c" //nolint:staticcheck // SA1019: the attack needs an app that accepts h2c upgrades
	"golang.org/x/net/http2/hpack"
)

// proxyAttackApp is an app that accepts h2c upgrades (x/net's h2c handler;
// like lenient servers it does not insist that Connection still names
// HTTP2-Settings) and "Upgrade: tcp" (then it echoes a line, upper-cased).
// It records every request it serves, HTTP/2 ones inside an upgrade too.
type proxyAttackApp struct {
	url  string
	mu   sync.Mutex
	seen []string
}

func newProxyAttackApp(t *testing.T) *proxyAttackApp {
	t.Helper()
	a := &proxyAttackApp{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Proto+" "+r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			io.WriteString(c, strings.ToUpper(line))
			return
		}
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Meshward-Peer-Identity"))
	})
	//nolint:staticcheck // SA1019: the attack needs an app that accepts h2c upgrades
	h2h := h2c.NewHandler(mux, &http2.Server{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("HTTP2-Settings") != "" && strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
		}
		h2h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *proxyAttackApp) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// proxyAttackMesh runs a control plane, the app behind an "api" sidecar
// (allowing the tcp upgrade), and a "client" sidecar with an upstream
// listener for api. Policy: client may GET api.
func proxyAttackMesh(t *testing.T, app *proxyAttackApp) (dataDir, ctrlAddr, apiInbound, upstream string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	ctrlAddr = freePort(t)
	startControl(t, dataDir, ctrlAddr)
	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "api.yaml"), []byte(`apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: e2e.local}
---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api, namespace: default}
spec:
  target: api
  rules:
    - name: client-reads
      from: [{service: client}]
      to: [{methods: [GET]}]
`), 0o600)
	mustMeshward(t, "policy", "apply", pol, "--data-dir", dataDir)
	apiInbound = freePort(t)
	apiTok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", "api", "--data-dir", dataDir))
	start(t, []string{"MESHWARD_TOKEN=" + apiTok}, "proxy", "--service", "api", "--control", ctrlAddr,
		"--inbound", apiInbound, "--app", strings.TrimPrefix(app.url, "http://"), "--allow-upgrade", "tcp",
		"--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)
	upstream = freePort(t)
	cliTok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", "client", "--data-dir", dataDir))
	start(t, []string{"MESHWARD_TOKEN=" + cliTok}, "proxy", "--service", "client", "--control", ctrlAddr,
		"--upstream", "api="+upstream, "--admin", freePort(t)).waitOutput(t, "policy in force", 20*time.Second)
	waitStatus(t, "http://"+upstream+"/", 200, 20*time.Second)
	return dataDir, ctrlAddr, apiInbound, upstream
}

// proxyAttackClientTLS is the client workload's own SVID, fetched as any
// workload can, for talking to api's sidecar directly (ALPN http/1.1).
func proxyAttackClientTLS(t *testing.T, dataDir, ctrlAddr string) *tls.Config {
	t.Helper()
	dir := t.TempDir()
	tok := strings.TrimSpace(mustMeshward(t, "token", "create", "--service", "client", "--data-dir", dataDir))
	mustMeshward(t, "identity", "fetch", "--token", tok, "--control", ctrlAddr, "--out", dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	roots.AppendCertsFromPEM(pem)
	return &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"},
		// A SPIFFE server certificate has no DNS name: check the chain only.
		InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
}

// proxyAttackSmuggle speaks HTTP/2 on a connection the app switched to
// h2c: DELETE /orders, which policy denies, claiming another identity; it
// returns the :status it gets ("" for none).
func proxyAttackSmuggle(c net.Conn, br *bufio.Reader) string {
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, br)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "DELETE"}, {":scheme", "http"}, {":authority", "api"}, {":path", "/orders"},
		{"x-meshward-peer-identity", "spiffe://e2e.local/ns/default/sa/admin"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return ""
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
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

// TestAttackH2CUpgrade: a workload allowed to GET api asks for an h2c
// upgrade, through its own outbound listener and straight at api's sidecar
// with its own SVID. The app accepts h2c, so today the upgrade would let
// every HTTP/2 request inside it (here a DELETE that policy denies, with a
// forged identity header) reach the app with no decision and no audit
// line. Must hold: 403, the app sees nothing, the deny (rule h2c-upgrade)
// reaches `meshward audit`; an Upgrade protocol the service allows (tcp)
// still works, an unlisted one is refused.
func TestAttackH2CUpgrade(t *testing.T) {
	app := newProxyAttackApp(t)
	dataDir, ctrlAddr, apiInbound, upstream := proxyAttackMesh(t, app)
	clientTLS := proxyAttackClientTLS(t, dataDir, ctrlAddr)
	before := len(app.requests())

	const settings = "AAMAAABkAARAAP__AAIAAAAA"
	h2cReq := "GET / HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\n\r\n"
	dialers := map[string]func() (net.Conn, error){
		"outbound listener": func() (net.Conn, error) { return net.DialTimeout("tcp", upstream, 2*time.Second) },
		"api sidecar direct": func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", apiInbound, clientTLS)
		},
	}
	send := func(dial func() (net.Conn, error), req string) (*http.Response, net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		return res, c, br
	}
	for name, dial := range dialers {
		res, c, br := send(dial, h2cReq)
		if res.StatusCode == http.StatusSwitchingProtocols {
			t.Fatalf("%s: h2c upgrade forwarded (101); a denied DELETE inside it got :status %q", name, proxyAttackSmuggle(c, br))
		}
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: h2c upgrade: %d, want 403", name, res.StatusCode)
		}
		res, _, _ = send(dial, "GET / HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: my-tunnel\r\n\r\n")
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: unlisted upgrade: %d, want 403", name, res.StatusCode)
		}
	}
	if got := app.requests()[before:]; len(got) != 0 {
		t.Errorf("the app served %q", got)
	}

	// The allowed protocol passes, after policy.
	res, c, br := send(dialers["outbound listener"], "GET /pipe HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("allowed tcp upgrade: %d, want 101", res.StatusCode)
	}
	io.WriteString(c, "ping\n")
	if got, _ := br.ReadString('\n'); got != "PING\n" {
		t.Errorf("through the tcp upgrade: %q", got)
	}

	// The h2c denies reach the audit trail, with their rule.
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		for _, d := range proxyAttackAuditDenies(t, dataDir, "spiffe://e2e.local/ns/default/sa/client") {
			if strings.Contains(d, "rule=h2c-upgrade") {
				n++
			}
		}
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no h2c-upgrade deny in meshward audit: %q", proxyAttackAuditDenies(t, dataDir, "spiffe://e2e.local/ns/default/sa/client"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// proxyAttackAuditDenies is the detail of every request.deny in the audit
// trail whose actor is actor.
func proxyAttackAuditDenies(t *testing.T, dataDir, actor string) []string {
	t.Helper()
	out := mustMeshward(t, "audit", "--since", "10m", "-o", "json", "--data-dir", dataDir)
	var details []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var e struct{ Action, Actor, Detail string }
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("audit -o json: %v\n%s", err, out)
		}
		if e.Action == "request.deny" && e.Actor == actor {
			details = append(details, e.Detail)
		}
	}
	return details
}

// TestAttackUpgradeUnderUp: under `meshward up`, a service's
// allowUpgrades in mesh.yaml reaches its sidecar: the listed protocol is
// forwarded (after policy), h2c and unlisted ones are refused.
func TestAttackUpgradeUnderUp(t *testing.T) {
	app := newProxyAttackApp(t)
	appPort := strings.TrimPrefix(app.url, "http://127.0.0.1:")
	dir := t.TempDir()
	upstream := freePort(t)
	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	os.WriteFile(filepath.Join(dir, "policies", "api.yaml"), []byte(`apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: api, namespace: default}
spec:
  target: api
  rules:
    - name: client-reads
      from: [{service: client}]
      to: [{methods: [GET]}]
`), 0o600)
	clientPort := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(fmt.Sprintf(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: upgrades}
spec:
  trustDomain: up.local
  control: {listen: %s}
  dashboard: {listen: %s}
  services:
    - name: api
      port: %s
      allowUpgrades: [tcp]
    - name: client
      port: %s
      upstreams:
        - {service: api, listen: %s}
`, freePort(t), freePort(t), appPort, clientPort, upstream)), 0o600)
	up := start(t, nil, "up", "-f", filepath.Join(dir, "mesh.yaml"), "--data-dir", filepath.Join(dir, ".meshward"))
	up.waitOutput(t, "is up", 60*time.Second)

	try := func(proto string) (*http.Response, net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", upstream, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		extra := ""
		if proto == "h2c" {
			extra = "HTTP2-Settings: AAMAAABkAARAAP__AAIAAAAA\r\n"
		}
		io.WriteString(c, "GET /pipe HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: "+proto+"\r\n"+extra+"\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no response: %v\n%s", proto, err, tail(up.out.String(), 40))
		}
		return res, c, br
	}
	for _, proto := range []string{"h2c", "my-tunnel"} {
		if res, c, br := try(proto); res.StatusCode != http.StatusForbidden {
			if res.StatusCode == http.StatusSwitchingProtocols && proto == "h2c" {
				t.Fatalf("h2c upgrade forwarded (101); a denied DELETE inside it got :status %q", proxyAttackSmuggle(c, br))
			}
			t.Errorf("%s upgrade: %d, want 403", proto, res.StatusCode)
		}
	}
	c, err := net.DialTimeout("tcp", upstream, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /pipe HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("allowUpgrades [tcp]: %v %v, want 101\n%s", res, err, tail(up.out.String(), 40))
	}
	io.WriteString(c, "ping\n")
	if got, _ := br.ReadString('\n'); got != "PING\n" {
		t.Errorf("through the tcp upgrade: %q", got)
	}
}

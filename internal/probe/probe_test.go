package probe

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/testpki"
)

// ruleSev is the part of a finding these tests pin down.
type ruleSev struct {
	Rule     string
	Category string
	Severity scan.Severity
}

func ruleSevs(fs []scan.Finding) []ruleSev {
	out := []ruleSev{}
	for _, f := range fs {
		out = append(out, ruleSev{f.Rule, f.Category, f.Severity})
	}
	return out
}

func accepted(res *Result) map[string]bool {
	m := map[string]bool{}
	for _, v := range res.Versions {
		m[v.Name] = v.Accepted
	}
	return m
}

func runProbe(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestRunMeshSidecarIsClean(t *testing.T) {
	t.Parallel()
	m := startMeshServer(t)
	now := m.svid.Certificates[0].NotBefore.Add(time.Hour)
	res := runProbe(t, Config{
		Target:     m.target,
		Bundle:     m.root.Bundle().X509Authorities(),
		BundleName: "bundle.pem",
		Now:        func() time.Time { return now },
	})

	if got := Evaluate(res); len(got) != 0 {
		t.Errorf("findings on a strict mTLS sidecar, want none:\n%+v", got)
	}
	want := map[string]bool{"TLS 1.0": false, "TLS 1.1": false, "TLS 1.2": false, "TLS 1.3": true}
	if diff := cmp.Diff(want, accepted(res)); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	if res.PlaintextHTTP.Accepted || res.PlaintextRaw.Accepted {
		t.Errorf("plaintext accepted: http %+v raw %+v", res.PlaintextHTTP, res.PlaintextRaw)
	}
	if res.NoClientCert.Accepted || !res.ClientCertRequested {
		t.Errorf("no-client-cert check = %+v requested=%v, want refused and requested", res.NoClientCert, res.ClientCertRequested)
	}
	if !strings.Contains(res.NoClientCert.Detail, "certificate required") {
		t.Errorf("no-client-cert detail %q does not name the alert", res.NoClientCert.Detail)
	}
	if len(res.Chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(res.Chain))
	}
	leaf := res.Chain[0]
	if leaf.SPIFFEID != "spiffe://shop.test/ns/default/sa/payments" || leaf.TrustDomain != "shop.test" {
		t.Errorf("leaf identity = %q in %q", leaf.SPIFFEID, leaf.TrustDomain)
	}
	if leaf.KeyType != "ECDSA" || leaf.KeyBits != 256 || leaf.Signature != "ECDSA-SHA256" {
		t.Errorf("leaf key/signature = %s %d %s", leaf.KeyType, leaf.KeyBits, leaf.Signature)
	}
	if leaf.Lifetime != "2h0m0s" || leaf.Remaining != "1h0m0s" {
		t.Errorf("leaf lifetime %s remaining %s, want 2h0m0s and 1h0m0s", leaf.Lifetime, leaf.Remaining)
	}
	if res.Bundle == nil || !res.Bundle.Verified {
		t.Errorf("bundle check = %+v, want verified", res.Bundle)
	}
	if res.WithClientCert != nil {
		t.Errorf("WithClientCert set without a client certificate")
	}
}

func TestRunMeshSidecarWithIdentity(t *testing.T) {
	t.Parallel()
	m := startMeshServer(t)
	good := svidCert(m.inter.SVID(t, "spiffe://shop.test/ns/default/sa/frontend"))
	other := testpki.NewCA(t, "evil.test")
	bad := svidCert(other.SVID(t, "spiffe://evil.test/ns/default/sa/frontend"))

	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want bool
	}{
		{"identity from the mesh", good, true},
		{"identity from another CA", bad, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runProbe(t, Config{Target: m.target, ClientCert: &tc.cert})
			if res.WithClientCert == nil || res.WithClientCert.Accepted != tc.want {
				t.Fatalf("with client cert = %+v, want accepted=%v", res.WithClientCert, tc.want)
			}
			if res.NoClientCert.Accepted {
				t.Errorf("no-client-cert accepted: %+v", res.NoClientCert)
			}
		})
	}
}

func TestRunPlaintextHTTP(t *testing.T) {
	t.Parallel()
	target := startPlainHTTP(t)
	res := runProbe(t, Config{Target: target})
	if !res.PlaintextHTTP.Accepted || !strings.Contains(res.PlaintextHTTP.Detail, "HTTP 200") {
		t.Errorf("plaintext HTTP = %+v, want accepted with HTTP 200", res.PlaintextHTTP)
	}
	if res.SpeaksTLS || len(res.Chain) != 0 {
		t.Errorf("SpeaksTLS=%v chain=%d on a plaintext server", res.SpeaksTLS, len(res.Chain))
	}
	want := []ruleSev{{RulePlaintext, "mtls-disabled", scan.SeverityCritical}}
	if diff := cmp.Diff(want, ruleSevs(Evaluate(res))); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestRunTLSWithoutClientAuth(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "web.test")
	target := startTLSNoClientAuth(t, ca)
	other := testpki.NewCA(t, "other.test")
	res := runProbe(t, Config{Target: target, Bundle: other.Bundle().X509Authorities(), BundleName: "other.pem"})

	if res.PlaintextHTTP.Accepted || !strings.Contains(res.PlaintextHTTP.Detail, "asking for HTTPS") {
		t.Errorf("plaintext HTTP = %+v, want refused by the HTTPS server's 400", res.PlaintextHTTP)
	}
	if !res.NoClientCert.Accepted || res.ClientCertRequested {
		t.Errorf("no-client-cert = %+v requested=%v, want accepted, never requested", res.NoClientCert, res.ClientCertRequested)
	}
	want := map[string]bool{"TLS 1.0": false, "TLS 1.1": false, "TLS 1.2": true, "TLS 1.3": true}
	if diff := cmp.Diff(want, accepted(res)); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	// Go's server accepts only the ECDSA suites for an ECDSA certificate.
	for _, v := range res.Versions {
		for _, s := range v.Suites {
			if v.Name != "TLS 1.3" && !strings.HasPrefix(s.Name, "TLS_ECDHE_ECDSA_") {
				t.Errorf("%s: suite %s accepted by an ECDSA-only server", v.Name, s.Name)
			}
		}
	}
	wantF := []ruleSev{
		{RuleNoClientCert, "mtls-permissive", scan.SeverityHigh},
		{RuleCertUntrusted, "cert-untrusted", scan.SeverityHigh},
		{RuleWeakCipher, "tls-weak-cipher", scan.SeverityLow},
		{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityInfo},
	}
	if diff := cmp.Diff(wantF, ruleSevs(Evaluate(res))); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestRunUnreachable(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{Target: closedPort(t), Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Run on a closed port = %v, want a connect error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{}},
		{"negative timeout", Config{Target: Target{Host: "a", Port: 1}, Timeout: -time.Second}},
		{"huge timeout", Config{Target: Target{Host: "a", Port: 1}, Timeout: time.Hour}},
		{"client cert without key", Config{Target: Target{Host: "a", Port: 1}, ClientCert: &tls.Certificate{Certificate: [][]byte{{1}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil {
				t.Errorf("Validate() = nil, want an error")
			}
			if _, err := Run(context.Background(), tc.cfg); err == nil {
				t.Errorf("Run() = nil error, want the validation error")
			}
		})
	}
}

// A Go server told to use only 3DES over TLS 1.0-1.2 with an RSA key: the
// probe finds the suite one at a time and rates it high.
func TestRunLegacyGoServer(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "legacy.test")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.TLSCert(t, testpki.Leaf{Key: key})
	target := startTLSServer(t, &tls.Config{
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
		Certificates: []tls.Certificate{cert},
	})
	res := runProbe(t, Config{Target: target})
	for _, v := range res.Versions {
		var names []string
		for _, s := range v.Suites {
			names = append(names, s.Name)
		}
		want := []string{"TLS_RSA_WITH_3DES_EDE_CBC_SHA"}
		if v.Name == "TLS 1.3" {
			want = nil
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("%s suites (-want +got):\n%s", v.Name, diff)
		}
	}
	want := []ruleSev{
		{RuleNoClientCert, "mtls-permissive", scan.SeverityHigh},
		{RuleLegacyVersion, "tls-legacy-version", scan.SeverityHigh},
		{RuleWeakCipher, "tls-weak-cipher", scan.SeverityHigh},
		{RuleNoTLS13, "tls13-missing", scan.SeverityLow},
		{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityInfo},
	}
	if diff := cmp.Diff(want, ruleSevs(Evaluate(res))); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

// A plaintext TCP service that greets first (like SMTP or Redis): the HTTP
// check sees no HTTP, but the raw check sees plaintext answers.
func TestRunPlaintextBanner(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "+OK ready\r\n")
			_ = c.Close()
		}
	}()
	res := runProbe(t, Config{Target: targetOf(t, ln.Addr().String())})
	if res.PlaintextHTTP.Accepted {
		t.Errorf("plaintext HTTP = %+v, want refused (the answer is not HTTP)", res.PlaintextHTTP)
	}
	if !res.PlaintextRaw.Accepted || !strings.Contains(res.PlaintextRaw.Detail, "11 bytes of plaintext") {
		t.Errorf("plaintext bytes = %+v, want accepted with the 11-byte banner", res.PlaintextRaw)
	}
	want := []ruleSev{{RulePlaintext, "mtls-disabled", scan.SeverityCritical}}
	if diff := cmp.Diff(want, ruleSevs(Evaluate(res))); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

// silentServer accepts connections and reads forever, answering nothing.
func silentServer(t *testing.T, greet func(net.Conn) bool) Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
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
				if greet != nil && !greet(c) {
					return
				}
				_, _ = io.Copy(io.Discard, c) // until the probe hangs up
			}()
		}
	}()
	return targetOf(t, ln.Addr().String())
}

func TestRunSilentEndpoints(t *testing.T) {
	t.Parallel()
	// A plaintext line protocol: answers TLS with an error line, waits
	// silently for more on anything else.
	lineProto := func(c net.Conn) bool {
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			return false
		}
		if b[0] == 22 { // a TLS handshake record
			_, _ = io.WriteString(c, "-ERR unknown command\r\n")
			return false
		}
		return true
	}
	for _, tc := range []struct {
		name    string
		greet   func(net.Conn) bool
		wantRaw bool
		want    []ruleSev
	}{
		{"answers nothing at all", nil, false, []ruleSev{}},
		{"holds plaintext, rejects TLS", lineProto, true, []ruleSev{{RulePlaintext, "mtls-disabled", scan.SeverityCritical}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The endpoint never answers in time: the short timeout is the
			// only way each step ends, so the outcome does not depend on it.
			res := runProbe(t, Config{Target: silentServer(t, tc.greet), Timeout: 50 * time.Millisecond})
			if res.PlaintextRaw.Accepted != tc.wantRaw {
				t.Errorf("plaintext bytes = %+v, want accepted=%v", res.PlaintextRaw, tc.wantRaw)
			}
			if diff := cmp.Diff(tc.want, ruleSevs(Evaluate(res))); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	target := silentServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Target: target, Timeout: time.Minute}); err == nil {
		t.Fatal("Run with a cancelled context = nil error")
	}
}

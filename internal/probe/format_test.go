package probe

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/<test>/<name>.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", firstPart(t.Name()), name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func firstPart(name string) string {
	for i := range name {
		if name[i] == '/' {
			return name[:i]
		}
	}
	return name
}

var probedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func allRefused(acceptedFrom uint16, suites map[uint16][]CipherSuite) []Version {
	var out []Version
	for _, v := range tlsVersions {
		ver := Version{Name: v.name, ID: v.id, Detail: "TLS alert: protocol version not supported"}
		if v.id >= acceptedFrom && acceptedFrom != 0 {
			ver.Accepted = true
			ver.Detail = "handshake completed"
			ver.Suites = suites[v.id]
		}
		out = append(out, ver)
	}
	return out
}

func suite(id uint16) CipherSuite {
	w, _ := suiteWeakness(id)
	return CipherSuite{Name: tls.CipherSuiteName(id), ID: id, Weak: w}
}

// goldenResults are fixed results, one per kind of endpoint.
func goldenResults() map[string]*Result {
	sidecarLeaf := Cert{
		Subject: "", Issuer: "CN=intermediate,O=testpki", Serial: "1a2b3c",
		SHA256:    "AA:BB:CC:DD",
		NotBefore: probedAt.Add(-30 * time.Minute), NotAfter: probedAt.Add(30 * time.Minute),
		Lifetime: "1h0m0s", Remaining: "30m0s",
		KeyType: "ECDSA", KeyBits: 256, KeyCurve: "P-256", Signature: "ECDSA-SHA256",
		SPIFFEID: "spiffe://shop.local/ns/default/sa/payments", TrustDomain: "shop.local",
		URIs: []string{"spiffe://shop.local/ns/default/sa/payments"},
	}
	inter := Cert{
		Subject: "CN=intermediate,O=testpki", Issuer: "CN=root shop.local,O=testpki", Serial: "4d5e", SHA256: "11:22",
		IsCA:      true,
		NotBefore: probedAt.Add(-24 * time.Hour), NotAfter: probedAt.Add(6 * 24 * time.Hour),
		Lifetime: "7d 0h", Remaining: "6d 0h",
		KeyType: "ECDSA", KeyBits: 256, KeyCurve: "P-256", Signature: "ECDSA-SHA256",
		SPIFFEID: "spiffe://shop.local", TrustDomain: "shop.local", URIs: []string{"spiffe://shop.local"},
	}
	legacyLeaf := Cert{
		Subject: "CN=legacy.example", Issuer: "CN=legacy.example", Serial: "1", SHA256: "DE:AD:BE:EF",
		SelfSigned: true,
		NotBefore:  probedAt.Add(-900 * 24 * time.Hour), NotAfter: probedAt.Add(-24 * time.Hour),
		Lifetime: "899d 0h", Remaining: "-24h0m0s",
		KeyType: "RSA", KeyBits: 1024, Signature: "SHA1-RSA",
		DNSNames: []string{"legacy.example"},
	}
	return map[string]*Result{
		"sidecar": {
			Target: "127.0.0.1:15001", ProbedAt: probedAt,
			PlaintextHTTP:       Check{Detail: "no answer: connection closed"},
			PlaintextRaw:        Check{Detail: "no answer: connection reset"},
			SpeaksTLS:           true,
			NoClientCert:        Check{Detail: "handshake without a client certificate completed, then the server dropped the session: TLS alert: certificate required"},
			ClientCertRequested: true,
			WithClientCert:      &Check{Accepted: true, Detail: "handshake completed with the client certificate and the server answered 3 bytes of application data"},
			Versions:            allRefused(tls.VersionTLS13, map[uint16][]CipherSuite{tls.VersionTLS13: {suite(tls.TLS_AES_128_GCM_SHA256)}}),
			Chain:               []Cert{sidecarLeaf, inter},
			Bundle:              &BundleCheck{File: "bundle.pem", Verified: true, Detail: "chain verifies against the bundle"},
			Notes:               []string{"SSLv3 and SSLv2 not tested: Go's crypto/tls cannot offer them"},
		},
		"plaintext": {
			Target: "app.internal:8080", ProbedAt: probedAt,
			PlaintextHTTP: Check{Accepted: true, Detail: "answered a plaintext HTTP request with HTTP 200"},
			PlaintextRaw:  Check{Detail: "answered HTTP 400: an HTTP parser rejected the bytes (see the plaintext HTTP check)"},
			NoClientCert:  Check{Detail: "no TLS version was accepted"},
			Versions:      allRefused(0, nil),
			Notes:         []string{"SSLv3 and SSLv2 not tested: Go's crypto/tls cannot offer them"},
		},
		"legacy": {
			Target: "[::1]:443", ProbedAt: probedAt,
			PlaintextHTTP: Check{Accepted: true, Detail: "answered a plaintext HTTP request with HTTP 404"},
			PlaintextRaw:  Check{Accepted: true, Detail: "answered 12 bytes of plaintext"},
			SpeaksTLS:     true,
			NoClientCert:  Check{Accepted: true, Detail: "handshake completed without a client certificate; the server never asked for one"},
			Versions: allRefused(tls.VersionTLS10, map[uint16][]CipherSuite{
				tls.VersionTLS10: {suite(tls.TLS_RSA_WITH_RC4_128_SHA), suite(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA)},
				tls.VersionTLS12: {suite(tls.TLS_RSA_WITH_AES_128_GCM_SHA256), suite(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)},
			})[1:], // no TLS 1.3
			Chain:  []Cert{legacyLeaf},
			Bundle: &BundleCheck{File: "mesh-bundle.pem", Detail: "x509: certificate signed by unknown authority"},
		},
	}
}

func TestWriteGolden(t *testing.T) {
	for name, res := range goldenResults() {
		t.Run(name, func(t *testing.T) {
			rep := NewReport(res, Evaluate(res))
			var text, js bytes.Buffer
			if err := WriteText(&text, rep); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, rep); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", text.Bytes())
			golden(t, name+".json", js.Bytes())

			// The JSON reads back into the same report.
			var back Report
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatalf("JSON does not read back: %v", err)
			}
			if diff := cmp.Diff(rep, back); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteTextReportsWriteErrors(t *testing.T) {
	res := goldenResults()["sidecar"]
	if err := WriteText(failWriter{}, NewReport(res, nil)); err == nil {
		t.Error("WriteText to a failing writer = nil error")
	}
	if err := WriteJSON(failWriter{}, NewReport(res, nil)); err == nil {
		t.Error("WriteJSON to a failing writer = nil error")
	}
}

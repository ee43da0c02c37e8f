package probe

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/testenv"
	"meshward.dev/meshward/internal/testpki"
)

// nginxConf is a deliberately weak TLS server: TLS 1.0 to 1.3, every cipher
// OpenSSL has at security level 0 (which also admits the 1024-bit RSA key and
// the SHA-1 signature), no client authentication. The master process stays
// (nginx only takes over an inherited socket in master mode).
const nginxConf = `
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s ssl;
        ssl_certificate %[1]s/cert.pem;
        ssl_certificate_key %[1]s/key.pem;
        ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
        ssl_ciphers ALL:@SECLEVEL=0;
        ssl_prefer_server_ciphers on;
        location / { return 200 "hello\n"; }
    }
}
`

// startWeakNginx runs nginx in the foreground on a loopback socket that the
// test opened and hands over (NGINX="3;" is nginx's socket inheritance), so
// connections queue in the kernel until nginx accepts them: no readiness
// polling. The returned context ends if nginx exits early.
func startWeakNginx(t *testing.T) (Target, *testpki.CA, context.Context) {
	t.Helper()
	nginxBin := testenv.Tool(t, "nginx", "nginx")
	dir := t.TempDir()
	ca := testpki.NewCA(t, "legacy.test")
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := ca.TLSCert(t, testpki.Leaf{
		Key:                key,
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.Add(800 * 24 * time.Hour),
		DNSNames:           []string{"legacy.test"},
		SignatureAlgorithm: x509.ECDSAWithSHA1,
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", testpki.PEM(cert.Leaf))
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer ln.Close()
	write("nginx.conf", []byte(fmt.Sprintf(nginxConf, dir, addr)))

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.Command(nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Env = append(os.Environ(), "NGINX=3;")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		cancel()
		close(done)
	}()
	t.Cleanup(func() {
		// SIGTERM: the master stops its worker, then itself.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	return targetOf(t, addr), ca, ctx
}

func TestRunWeakNginx(t *testing.T) {
	t.Parallel()
	target, ca, ctx := startWeakNginx(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	now := time.Now()
	res, err := Run(ctx, Config{
		Target:     target,
		Timeout:    10 * time.Second,
		Bundle:     ca.Bundle().X509Authorities(),
		BundleName: "legacy.pem",
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	if res.PlaintextHTTP.Accepted || !strings.Contains(res.PlaintextHTTP.Detail, "asking for HTTPS") {
		t.Errorf("plaintext HTTP = %+v, want nginx's 400 for plain HTTP on an HTTPS port", res.PlaintextHTTP)
	}
	if res.PlaintextRaw.Accepted {
		t.Errorf("plaintext bytes = %+v, want refused", res.PlaintextRaw)
	}
	want := map[string]bool{"TLS 1.0": true, "TLS 1.1": true, "TLS 1.2": true, "TLS 1.3": true}
	if diff := cmp.Diff(want, accepted(res)); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	var weak []string
	for _, v := range res.Versions {
		for _, s := range v.Suites {
			if s.Weak != "" {
				weak = append(weak, v.Name+" "+s.Name)
			}
		}
	}
	// Debian's OpenSSL 3 has no 3DES or RC4 even at level 0; RSA key
	// exchange (no forward secrecy) is the worst it offers.
	for _, w := range []string{"TLS 1.0 TLS_RSA_WITH_AES_128_CBC_SHA", "TLS 1.2 TLS_RSA_WITH_AES_128_GCM_SHA256"} {
		if !contains(weak, w) {
			t.Errorf("weak suites %v lack %s", weak, w)
		}
	}
	if len(res.Chain) == 0 || res.Chain[0].KeyBits != 1024 || res.Chain[0].Signature != "ECDSA-SHA1" {
		t.Fatalf("chain = %+v, want the 1024-bit RSA leaf signed with ECDSA-SHA1", res.Chain)
	}

	wantF := []ruleSev{
		{RuleNoClientCert, "mtls-permissive", scan.SeverityHigh},
		{RuleLegacyVersion, "tls-legacy-version", scan.SeverityHigh},
		{RuleCertWeakKey, "cert-weak-key", scan.SeverityHigh},
		{RuleCertWeakSig, "cert-weak-signature", scan.SeverityHigh},
		{RuleCertUntrusted, "cert-untrusted", scan.SeverityHigh},
		{RuleWeakCipher, "tls-weak-cipher", scan.SeverityMedium},
		{RuleCertLongLived, "cert-long-lived", scan.SeverityMedium},
		{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityInfo},
	}
	if diff := cmp.Diff(wantF, ruleSevs(Evaluate(res))); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

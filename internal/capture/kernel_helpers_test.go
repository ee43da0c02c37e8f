package capture

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"meshward.dev/meshward/internal/testenv"
)

// The real-kernel tests build a "pod" network namespace joined by a veth
// pair to a "peer" namespace (everything outside the pod), with these
// addresses, which exist only inside the two namespaces.
var (
	podIP  = netip.MustParseAddr("198.18.0.1")
	peerIP = netip.MustParseAddr("198.18.0.2")
)

const (
	appUID   = 65534 // the app's user (nobody)
	proxyUID = 2102
	appPort  = 8080
	// helperEnv makes the test binary a one-shot TCP client (see TestMain).
	helperEnv = "MESHWARD_CAPTURE_TEST_DIAL"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(dialHelper(addr))
	}
	code := m.Run()
	if helperPath != "" {
		_ = os.RemoveAll(filepath.Dir(helperPath))
	}
	os.Exit(code)
}

// dialHelper connects to addr, prints the first line it reads, and exits.
func dialHelper(addr string) int {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Print(line)
	return 0
}

// requireKernel skips without root or iptables, except under CI=true,
// where it fails: CI must never pass by skipping.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "needs root (network namespaces and iptables); run as root or in CI"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	testenv.Tool(t, "iptables-nft-restore", "iptables")
	testenv.Tool(t, "iptables-nft-save", "iptables")
	testenv.Tool(t, "ip", "iproute2")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newPod makes the pod and peer namespaces and returns their names.
func newPod(t *testing.T) (pod, peer string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	pod, peer = "mw-cap-"+hex.EncodeToString(b[:]), "mw-cap-"+hex.EncodeToString(b[:])+"-peer"
	for _, ns := range []string{pod, peer} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", pod, "link", "add", "vpod", "type", "veth", "peer", "name", "vpeer", "netns", peer)
	run(t, "ip", "-n", pod, "addr", "add", podIP.String()+"/24", "dev", "vpod")
	run(t, "ip", "-n", peer, "addr", "add", peerIP.String()+"/24", "dev", "vpeer")
	run(t, "ip", "-n", pod, "link", "set", "vpod", "up")
	run(t, "ip", "-n", peer, "link", "set", "vpeer", "up")
	return pod, peer
}

// server is a TCP listener in a namespace that greets every connection with
// its name and counts connections and the bytes they sent.
type server struct {
	name  string
	conns atomic.Int64
	bytes atomic.Int64
}

func listen(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := InNetNS(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func serve(t *testing.T, ns, addr, name string) *server {
	t.Helper()
	s := &server{name: name}
	ln := listen(t, ns, addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, name+"\n")
				n, _ := io.Copy(io.Discard, c)
				s.bytes.Add(n)
			}()
		}
	}()
	return s
}

// serveTLS is the sidecar's mTLS inbound stand-in: TLS 1.3, a client
// certificate required. It reports each handshake's error.
func serveTLS(t *testing.T, ns, addr string, cert tls.Certificate) <-chan error {
	t.Helper()
	ln := listen(t, ns, addr)
	errs := make(chan error, 16)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				err := tc.Handshake()
				select {
				case errs <- err:
				default:
				}
			}()
		}
	}()
	return errs
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sidecar"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{podIP.AsSlice()}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// helperBinary is a copy of the test binary that any user may run (the
// build directory is private to root).
func helperBinary(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		dir, err := os.MkdirTemp("", "mw-cap-helper-")
		if err != nil {
			helperErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			helperErr = err
			return
		}
		data, err := os.ReadFile(self) // #nosec G304 -- the running test binary
		if err != nil {
			helperErr = err
			return
		}
		helperPath = filepath.Join(dir, "dial")
		helperErr = os.WriteFile(helperPath, data, 0o755) // #nosec G306 -- must be executable by the app's user
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

// dialAs runs a client process as uid inside namespace ns (forked from a
// thread that joined ns, with SysProcAttr.Credential) and returns the first
// line it read from addr.
func dialAs(t *testing.T, ns string, uid uint32, addr string) string {
	t.Helper()
	bin := helperBinary(t)
	var out []byte
	err := InNetNS(ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = []string{helperEnv + "=" + addr}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		var err error
		out, err = cmd.Output()
		if err != nil && len(out) == 0 {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s as uid %d in %s: %v", addr, uid, ns, err)
	}
	return strings.TrimSpace(string(out))
}

// dialTLS connects from ns to addr without a client certificate and returns
// the handshake error, or the error of the first read (in TLS 1.3 the server
// refuses a missing certificate after the client's handshake is done).
func dialTLS(t *testing.T, ns, addr string, roots *x509.CertPool) error {
	t.Helper()
	var result error
	err := InNetNS(ns, func() error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp4", addr, &tls.Config{RootCAs: roots, ServerName: podIP.String(), MinVersion: tls.VersionTLS13})
		if err != nil {
			result = err
			return nil
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, result = c.Read(make([]byte, 1))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return result
}

func iptables(t *testing.T, ns string, args ...string) {
	t.Helper()
	run(t, append([]string{"ip", "netns", "exec", ns, lookPath("iptables-nft")}, args...)...)
}

func save(t *testing.T, tg Target) string {
	t.Helper()
	s, err := tg.Save(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

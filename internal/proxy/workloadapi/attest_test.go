package workloadapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/testpki"
)

// staticSource serves one SVID that never changes.
type staticSource struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func (s staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }
func (s staticSource) GetX509BundleForTrustDomain(spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundle, nil
}
func (s staticSource) TrustDomain() spiffeid.TrustDomain { return s.svid.ID.TrustDomain() }
func (s staticSource) Changed() <-chan struct{}          { return make(chan struct{}) }

const svcID = "spiffe://shop.local/ns/default/sa/catalog"

// serve runs a Workload API server with pol on a fresh socket.
func serve(t *testing.T, pol Attestor) string {
	t.Helper()
	ca := testpki.NewCA(t, "shop.local")
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "wlapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	srv, err := New(Config{Path: sock, Source: staticSource{ca.SVID(t, svcID), ca.Bundle()}, UID: os.Geteuid(), Attestor: pol})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

// fetch asks sock for an SVID with the stock go-spiffe client: "ok ID" or
// "refused CODE: message".
func fetch(sock string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
	if err != nil {
		return fmt.Sprintf("refused %s: %s", status.Code(err), status.Convert(err).Message())
	}
	return "ok " + svid.ID.String()
}

// TestHelperProcess is the other processes of TestWorkloadAPIAttestsCaller
// (the test binary run again): it waits for a line on stdin, then fetches
// from the socket named in WLAPI_TEST_SOCKET and prints the result. With
// WLAPI_TEST_SPAWN=1 it runs itself once more and prints what its child
// printed (a descendant's fetch).
func TestHelperProcess(t *testing.T) {
	sock := os.Getenv("WLAPI_TEST_SOCKET")
	if sock == "" {
		return
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if os.Getenv("WLAPI_TEST_SPAWN") == "1" {
		child := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		child.Env = append(os.Environ(), "WLAPI_TEST_SPAWN=0")
		child.Stdin = strings.NewReader("go\n")
		out, err := child.Output()
		if err != nil {
			fmt.Println("child:", err)
		}
		fmt.Print(string(out))
		os.Exit(0)
	}
	fmt.Println(fetch(sock))
	os.Exit(0)
}

// helper starts the test binary as a helper process against sock, held
// until release is called; release returns what it printed.
func helper(t *testing.T, sock string, spawn bool) (*exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "WLAPI_TEST_SOCKET="+sock, fmt.Sprintf("WLAPI_TEST_SPAWN=%d", map[bool]int{false: 0, true: 1}[spawn]))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, func() string {
		fmt.Fprintln(in, "go")
		b, _ := io.ReadAll(out)
		_ = cmd.Wait()
		return strings.TrimSpace(string(b))
	}
}

// The attack: a process that is not the app (another app of the same
// user) asks the app's socket for its SVID and private key. Only the app,
// its descendants and the sidecar itself get it.
func TestWorkloadAPIAttestsCaller(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	uid := uint32(os.Geteuid()) //nolint:gosec // a uid
	ok := "ok " + svcID
	refused := "refused PermissionDenied: this socket does not serve the calling process: "

	t.Run("app", func(t *testing.T) {
		pol := NewPolicy(uid, true)
		sock := serve(t, pol)
		app, run := helper(t, sock, false)
		a, err := AppOf(app.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		pol.SetApp(&a)
		if got := run(); got != ok {
			t.Fatalf("the app's own fetch: %q; want %q", got, ok)
		}
	})
	t.Run("descendant of the app", func(t *testing.T) {
		pol := NewPolicy(uid, true)
		sock := serve(t, pol)
		app, run := helper(t, sock, true)
		a, err := AppOf(app.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		pol.SetApp(&a)
		if got := run(); got != ok {
			t.Fatalf("the app's child's fetch: %q; want %q", got, ok)
		}
	})
	t.Run("another process of the same user", func(t *testing.T) {
		pol := NewPolicy(uid, true)
		sock := serve(t, pol)
		app, _ := helper(t, sock, false)
		a, err := AppOf(app.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		pol.SetApp(&a)
		_, other := helper(t, sock, false)
		if got := other(); !strings.HasPrefix(got, refused+"the caller is not the service's app") {
			t.Fatalf("another process's fetch: %q; want PermissionDenied", got)
		}
	})
	t.Run("the app's pid with another start time", func(t *testing.T) {
		pol := NewPolicy(uid, true)
		sock := serve(t, pol)
		app, run := helper(t, sock, false)
		a, err := AppOf(app.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		a.Start++ // a later process given the recorded app's pid
		pol.SetApp(&a)
		if got := run(); !strings.HasPrefix(got, refused) {
			t.Fatalf("fetch by a process reusing the app's pid: %q; want PermissionDenied", got)
		}
	})
	t.Run("app not running", func(t *testing.T) {
		sock := serve(t, NewPolicy(uid, true))
		_, run := helper(t, sock, false)
		if got := run(); !strings.HasPrefix(got, refused+"caller pid") || !strings.HasSuffix(got, "the app is not running") {
			t.Fatalf("fetch with no app: %q; want PermissionDenied", got)
		}
	})
	t.Run("another user", func(t *testing.T) {
		sock := serve(t, NewPolicy(uid+1, false))
		_, run := helper(t, sock, false)
		if got := run(); !strings.HasPrefix(got, refused) || !strings.Contains(got, fmt.Sprintf("this socket serves uid %d", uid+1)) {
			t.Fatalf("fetch by another uid: %q; want PermissionDenied", got)
		}
	})
	t.Run("the sidecar itself", func(t *testing.T) {
		sock := serve(t, NewPolicy(uid+1, true))
		if got := fetch(sock); got != ok {
			t.Fatalf("the sidecar's own fetch: %q; want %q", got, ok)
		}
	})
}

func TestParseStat(t *testing.T) {
	tail := strings.Repeat(" 0", 17) + " 123456 1000 10" // fields 5-21, then 22: the start time
	tests := []struct {
		name    string
		in      string
		want    stat
		wantErr bool
	}{
		{name: "plain", in: "42 (sleep) S 7" + tail, want: stat{ppid: 7, start: 123456}},
		{name: "name with spaces and parentheses", in: "42 (a) S 9 (b) ) R 7" + tail, want: stat{ppid: 7, start: 123456}},
		{name: "empty", in: "", wantErr: true},
		{name: "no name", in: "42 S 7" + tail, wantErr: true},
		{name: "truncated", in: "42 (sleep) S 7 0 0", wantErr: true},
		{name: "ppid not a number", in: "42 (sleep) S x" + tail, wantErr: true},
		{name: "start not a number", in: "42 (sleep) S 7" + strings.Replace(tail, "123456", "-5", 1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat err = %v; wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(stat{})); !tc.wantErr && diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
	// The real thing, for this process.
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if st.ppid != os.Getppid() || st.start == 0 {
		t.Fatalf("readStat(self) = %+v; want ppid %d and a start time", st, os.Getppid())
	}
}

func TestFollowApps(t *testing.T) {
	pol := NewPolicy(0, true)
	FollowApps(strings.NewReader("123 456\n"), pol, nil)
	if pol.app.Load() != nil {
		t.Fatal("the app is still known after the supervisor's stream ended")
	}
	tests := []struct {
		name    string
		lines   []string
		want    *App
		wantErr bool
	}{
		{name: "started", lines: []string{"123 456"}, want: &App{PID: 123, Start: 456}},
		{name: "restarted", lines: []string{"123 456", "-", "124 999"}, want: &App{PID: 124, Start: 999}},
		{name: "exited", lines: []string{"123 456", "-"}, want: nil},
		{name: "malformed forgets the app", lines: []string{"123 456", "123"}, wantErr: true},
		{name: "init is never an app", lines: []string{"1 5"}, wantErr: true},
		{name: "negative", lines: []string{"-5 5"}, wantErr: true},
		{name: "empty", lines: []string{""}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := NewPolicy(0, true)
			var err error
			for _, l := range tc.lines {
				err = pol.apply(l)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("last line: err = %v; wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, pol.app.Load()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

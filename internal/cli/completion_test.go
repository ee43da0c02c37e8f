package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/sidecar"
)

// complete runs cobra's hidden __complete command in-process, as the shell
// scripts do, and returns the candidates, the directive line and stderr.
func complete(t *testing.T, args ...string) (cands []string, directive, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Execute(context.Background(), append([]string{"__complete"}, args...), &out, &errb)
	if err != nil {
		t.Fatalf("__complete %v: %v\n%s", args, err, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete %v: no directive line in %q", args, out.String())
	}
	return lines[:len(lines)-1], last, errb.String()
}

// startMesh runs a real control plane (in-process, bolt in t.TempDir()) and
// one sidecar per service, waits until every sidecar is listed, and returns
// the data dir.
func startMesh(t *testing.T, services ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var stderr bytes.Buffer
		if err := Execute(ctx, []string{"control", "--data-dir", dir, "--listen", "127.0.0.1:0", "--dashboard", "", "--trust-domain", "shop.local", "--log-level", "error"}, &bytes.Buffer{}, &stderr); err != nil && ctx.Err() == nil {
			t.Errorf("control plane: %v\n%s", err, stderr.String())
		}
	}()
	var sidecars []chan struct{}
	t.Cleanup(func() {
		cancel()
		for _, s := range sidecars {
			<-s
		}
		<-done
	})
	o := &adminOptions{dataDir: dir}
	waitStatus(t, o, func(*apiv1.MeshStatusResponse) bool { return true })
	b, err := os.ReadFile(filepath.Join(dir, control.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(b))
	for _, svc := range services {
		out, errOut, code := runCLI(t, "token", "create", "--data-dir", dir, "--service", svc)
		if code != 0 {
			t.Fatalf("token create: exit %d: %s", code, errOut)
		}
		s := make(chan struct{})
		sidecars = append(sidecars, s)
		go func() {
			defer close(s)
			err := sidecar.Run(ctx, sidecar.Config{Service: svc, Namespace: "default", Control: addr, Token: strings.TrimSpace(out), Inbound: "127.0.0.1:0", App: unusedAddr(t), Protocol: "http", Admin: "127.0.0.1:0"})
			if err != nil && ctx.Err() == nil {
				t.Errorf("sidecar %s: %v", svc, err)
			}
		}()
	}
	waitStatus(t, o, func(st *apiv1.MeshStatusResponse) bool { return len(st.GetWorkloads()) == len(services) })
	return dir
}

// waitStatus polls MeshStatus, bounded, until ok holds.
func waitStatus(t *testing.T, o *adminOptions, ok func(*apiv1.MeshStatusResponse) bool) *apiv1.MeshStatusResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		c, err := o.dial()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var st *apiv1.MeshStatusResponse
			st, err = c.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
			cancel()
			c.Close()
			if err == nil && ok(st) {
				return st
			}
		}
		last = err
		<-tick.C
	}
	t.Fatalf("mesh status not as expected within 30s (last error: %v)", last)
	return nil
}

// TestCompletionFromMesh: service names, SPIFFE IDs and policy revisions
// are completed from a real control plane, filtered by what was typed.
func TestCompletionFromMesh(t *testing.T) {
	t.Parallel()
	dir := startMesh(t, "payments", "catalog")
	for _, args := range [][]string{
		{"policy", "apply", "--data-dir", dir, demoPolicies, "--allow-unknown-services"},
		{"policy", "apply", "--data-dir", dir, "../policy/testdata/TestLint/warnings", "--allow-unknown-services"},
		{"policy", "rollback", "--data-dir", dir, "1"},
		{"identity", "ban", "--data-dir", dir, "spiffe://shop.local/ns/default/sa/orders"},
	} {
		if _, errOut, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // values, without descriptions
	}{
		{"tap services", []string{"tap", "--data-dir", dir, ""}, []string{"catalog", "payments"}},
		{"tap prefix", []string{"tap", "--data-dir", dir, "pay"}, []string{"payments"}},
		{"tap second argument", []string{"tap", "--data-dir", dir, "payments", ""}, nil},
		{"token service", []string{"token", "create", "--data-dir", dir, "--service", ""}, []string{"catalog", "payments"}},
		{"token service=", []string{"token", "create", "--data-dir", dir, "--service=c"}, []string{"catalog"}}, // the shell script puts "--service=" back
		{"token namespace", []string{"token", "create", "--data-dir", dir, "--namespace", ""}, []string{"default"}},
		{"ban", []string{"identity", "ban", "--data-dir", dir, ""}, []string{"spiffe://shop.local/ns/default/sa/catalog", "spiffe://shop.local/ns/default/sa/payments"}},
		{"ban prefix", []string{"identity", "ban", "--data-dir", dir, "spiffe://shop.local/ns/default/sa/p"}, []string{"spiffe://shop.local/ns/default/sa/payments"}},
		{"unban", []string{"identity", "unban", "--data-dir", dir, ""}, []string{"spiffe://shop.local/ns/default/sa/orders"}},
		{"rollback newest first", []string{"policy", "rollback", "--data-dir", dir, ""}, []string{"3", "2", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cands, directive, stderr := complete(t, tc.args...)
			var got []string
			for _, c := range cands {
				got = append(got, strings.SplitN(c, "\t", 2)[0])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("candidates (-want +got):\n%s\nstderr: %s", diff, stderr)
			}
			if directive != ":4" && directive != ":36" { // NoFileComp, maybe with KeepOrder
				t.Errorf("directive %s, want no file completion", directive)
			}
		})
	}
	cands, _, _ := complete(t, "policy", "rollback", "--data-dir", dir, "3")
	if len(cands) != 1 || !strings.Contains(cands[0], "rollback to revision 1") {
		t.Errorf("rollback candidate %q does not describe the revision", cands)
	}
}

// TestCompletionWithoutMesh: with no credential, a refused port or a peer
// that never answers the TLS handshake, completion offers nothing, prints no
// error and returns within the time limit.
func TestCompletionWithoutMesh(t *testing.T) {
	t.Parallel()
	dir := startMesh(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn // accept and never answer
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no admin credential", []string{"tap", "--data-dir", t.TempDir(), ""}},
		{"refused", []string{"identity", "ban", "--data-dir", dir, "--control", unusedAddr(t), ""}},
		{"silent peer", []string{"policy", "rollback", "--data-dir", dir, "--control", silent.Addr().String(), ""}},
		{"silent peer, flag", []string{"token", "create", "--data-dir", dir, "--control", silent.Addr().String(), "--service", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			cands, directive, stderr := complete(t, tc.args...)
			if d := time.Since(start); d > completionTimeout+2*time.Second {
				t.Errorf("completion took %s", d)
			}
			if len(cands) != 0 || directive != ":4" {
				t.Errorf("got %q %s, want no candidates and :4", cands, directive)
			}
			if want := "Completion ended with directive: ShellCompDirectiveNoFileComp\n"; stderr != want {
				t.Errorf("stderr %q, want only cobra's %q", stderr, want)
			}
		})
	}
}

// TestCompletionScripts: every shell's script is generated, and each
// completion command's --help has an example.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ shell, want string }{
		{"bash", "__start_meshward"},
		{"zsh", "#compdef meshward"},
		{"fish", "complete -c meshward"},
		{"powershell", "Register-ArgumentCompleter"},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runCLI(t, "completion", tc.shell)
			if code != 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, "__complete") {
				t.Errorf("completion %s: exit %d, %d bytes, stderr %q", tc.shell, code, len(out), errOut)
			}
			help, _, _ := runCLI(t, "completion", tc.shell, "--help")
			if !strings.Contains(help, "Examples:") {
				t.Errorf("completion %s --help has no example:\n%s", tc.shell, help)
			}
		})
	}
	if _, _, code := runCLI(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, exitUsage)
	}
	if help, _, _ := runCLI(t, "completion", "--help"); !strings.Contains(help, "Examples:") || !strings.Contains(help, "source <(meshward completion bash)") {
		t.Errorf("completion --help:\n%s", help)
	}
}

package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/observe"
)

// TestControlRefusesUnsafeAndBusyAddresses: the unauthenticated dashboard
// is refused beyond loopback without --insecure-dashboard, and an address
// another process holds is a usage error (exit 2) that names the flag and
// says what to do, before anything is served.
func TestControlRefusesUnsafeAndBusyAddresses(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // parallel subtests run after this function returns
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"dashboard beyond loopback", []string{"--dashboard", "0.0.0.0:0"}, []string{"--dashboard", "not a loopback address", "--insecure-dashboard"}},
		{"listen address in use", []string{"--listen", busy.Addr().String(), "--dashboard", ""}, []string{"--listen " + busy.Addr().String(), "address already in use", "meshward status"}},
		{"dashboard address in use", []string{"--listen", "127.0.0.1:0", "--dashboard", busy.Addr().String()}, []string{"--dashboard " + busy.Addr().String(), "address already in use"}},
		{"unknown store scheme", []string{"--listen", "127.0.0.1:0", "--dashboard", "", "--store", "mysql://db/meshward"}, []string{"--store", `unknown scheme "mysql"`, "bolt://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			args := append([]string{"control", "--data-dir", t.TempDir()}, tc.args...)
			err := Execute(ctx, args, &bytes.Buffer{}, &stderr)
			if ctx.Err() != nil {
				t.Fatal("the control plane started instead of refusing")
			}
			if code := ExitCode(err); code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not say %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestUpRefusesABusyAppPort: with a stranger on a service's port, up stops
// before anything starts (exit 2) and names the field.
func TestUpRefusesABusyAppPort(t *testing.T) {
	t.Parallel()
	stranger, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	controlAddr := free.Addr().String()
	free.Close()
	dir := t.TempDir()
	mesh := fmt.Sprintf(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  control: {listen: "%s"}
  dashboard: {listen: ""}
  services:
    - name: web
      port: %d
      command: [sleep, "60"]
`, controlAddr, stranger.Addr().(*net.TCPAddr).Port)
	file := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(file, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	err = Execute(ctx, []string{"up", "-f", file, "--data-dir", filepath.Join(dir, "data")}, &bytes.Buffer{}, &stderr)
	if ExitCode(err) != exitUsage || !strings.Contains(stderr.String(), file+":10: spec.services[0].port") || !strings.Contains(stderr.String(), "already in use") {
		t.Fatalf("exit %d, stderr %q; want exit 2 naming spec.services[0].port", ExitCode(err), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("up created its data dir before refusing: something started")
	}
}

// TestUpRefusesAServiceAccountItCannotRun: a serviceAccount other than the
// service's name validates (policies resolve it) but up cannot run it yet:
// an input error naming the field, before anything starts.
func TestUpRefusesAServiceAccountItCannotRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	mesh := `apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  services:
    - name: orders
      port: 18080
      serviceAccount: orders-sa
`
	if err := os.WriteFile(file, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := Execute(context.Background(), []string{"up", "-f", file, "--data-dir", filepath.Join(dir, "data")}, &bytes.Buffer{}, &stderr)
	if ExitCode(err) != exitUsage || !strings.Contains(stderr.String(), file+":9: spec.services[0].serviceAccount") {
		t.Fatalf("exit %d, stderr %q; want exit 2 naming spec.services[0].serviceAccount", ExitCode(err), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("up created its data dir before refusing")
	}
}

// TestControlStoreFlag: --store puts the state where it says (as a bolt://
// URL or a plain path), and without it the state is the bolt file in the
// data dir, as always. The data dir is private either way.
func TestControlStoreFlag(t *testing.T) {
	t.Parallel()
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		name  string
		store string
		file  string // "": <data-dir>/meshward.db
	}{
		{"default", "", ""},
		{"bolt URL", "bolt://" + filepath.Join(elsewhere, "url", "state.db"), filepath.Join(elsewhere, "url", "state.db")},
		{"plain path", filepath.Join(elsewhere, "plain.db"), filepath.Join(elsewhere, "plain.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dataDir, 0o755); err != nil { // an existing, too open data dir
				t.Fatal(err)
			}
			o := &controlOptions{dataDir: dataDir, store: tc.store, listen: "127.0.0.1:0", trustDomain: "shop.local"}
			ctx, cancel := context.WithCancel(context.Background())
			cp, err := newControlPlane(ctx, o, observe.Discard())
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			cancel()
			if err := cp.run(ctx); err != nil {
				t.Error(err)
			}
			cp.close()
			file, inDataDir := tc.file, filepath.Join(dataDir, "meshward.db")
			if file == "" {
				file = inDataDir
			} else if _, err := os.Stat(inDataDir); err == nil {
				t.Errorf("%s was created although --store %s", inDataDir, tc.store)
			}
			for path, want := range map[string]os.FileMode{file: 0o600, dataDir: 0o700} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Errorf("%s: %v", path, err)
				} else if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s: mode %o, want %o", path, got, want)
				}
			}
		})
	}
}

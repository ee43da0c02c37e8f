package localmesh

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/config"
)

// The attack: an app reads meshward's secrets from its own environment.
// Apps get the ordinary variables, their ports and their env:, nothing
// else; sidecars lose every MESHWARD_* variable but their join token.
func TestAppEnvIsScrubbed(t *testing.T) {
	parent := []string{
		"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC",
		"MESHWARD_STORE_KEY=00112233", "MESHWARD_TOKEN=join-token", "MESHWARD_DATA_DIR=/var/lib/meshward",
		"MESHWARD_CONTROL=127.0.0.1:7443", "MESHWARD_ADMIN_TOKEN=x", "AWS_SECRET_ACCESS_KEY=cloud", "GODEBUG=x=1",
	}
	old := environ
	environ = func() []string { return slices.Clone(parent) }
	t.Cleanup(func() { environ = old })

	mesh := &config.Mesh{Name: "m", TrustDomain: "m.local", DataDir: t.TempDir(), Services: []config.Service{{
		Name: "frontend", Namespace: "default", Port: 8080, Command: []string{"true"},
		Env: map[string]string{"GREETING": "hi", "TZ": "Europe/Paris"}, Upstreams: []config.Upstream{{Service: "catalog", Listen: "127.0.0.1:9001"}},
	}}}
	s := &Supervisor{cfg: Config{Mesh: mesh}}
	svc := &Service{Name: "frontend", Namespace: "default", App: "127.0.0.1:8080", Socket: "/run/s.sock", Upstreams: map[string]string{"catalog": "127.0.0.1:9001"}}
	cmd, err := s.appCmd(context.Background(), svc, mesh.Services[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(cmd.Env))
	want := []string{
		"GREETING=hi", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C",
		"MESHWARD_LISTEN=127.0.0.1:8080", "MESHWARD_NAMESPACE=default", "MESHWARD_PORT=8080", "MESHWARD_SERVICE=frontend",
		"MESHWARD_TRUST_DOMAIN=m.local", "MESHWARD_UPSTREAM_CATALOG=127.0.0.1:9001",
		"PATH=/usr/bin", "SPIFFE_ENDPOINT_SOCKET=unix:///run/s.sock", "TZ=Europe/Paris",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("app environment (-want +got)\n%s", diff)
	}

	side := sidecarEnv(environ(), "fresh-token")
	for _, kv := range side {
		if strings.HasPrefix(kv, "MESHWARD_") && kv != "MESHWARD_TOKEN=fresh-token" {
			t.Errorf("sidecar environment has %s", kv)
		}
	}
	if !slices.Contains(side, "GODEBUG=x=1") || !slices.Contains(side, "MESHWARD_TOKEN=fresh-token") {
		t.Errorf("sidecar environment lost GODEBUG or its token: %v", side)
	}
}

func TestResolveUsers(t *testing.T) {
	doc := "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  trustDomain: m.local\n  services:\n    - name: a\n      port: 8080\n      user: %s\n    - name: b\n      port: 8081\n"
	parse := func(t *testing.T, user string) *config.Mesh {
		t.Helper()
		m, err := config.ParseMesh("mesh.yaml", []byte(strings.Replace(doc, "%s", user, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name    string
		user    string
		euid    int
		wantUID int // -1: no user
		wantErr string
	}{
		{name: "not root", user: "nobody", euid: 1000, wantErr: `mesh.yaml:9: spec.services[0].user: running a as "nobody" needs meshward up to run as root (it runs as uid 1000); remove user: to run every app as uid 1000`},
		{name: "unknown user", user: "no-such-user-here", euid: 0, wantErr: `mesh.yaml:9: spec.services[0].user: no user "no-such-user-here" on this machine`},
		{name: "by name", user: "nobody", euid: 0, wantUID: 65534},
		{name: "by uid", user: "65534", euid: 0, wantUID: 65534},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, err := resolveUsers(parse(t, tc.user), tc.euid)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v; want %s", err, tc.wantErr)
				}
				if len(config.Errors(err)) != 1 {
					t.Fatalf("err is not one config error (exit 2): %#v", err)
				}
				return
			}
			if err != nil {
				if strings.Contains(err.Error(), "no user") {
					t.Skip("this machine has no nobody user (uid 65534)")
				}
				t.Fatal(err)
			}
			if users[1] != nil {
				t.Errorf("service b without user: runs as %+v", users[1])
			}
			if users[0] == nil || int(users[0].cred.Uid) != tc.wantUID || users[0].cred.Groups == nil {
				t.Fatalf("user = %+v; want uid %d with an explicit (root-free) group list", users[0], tc.wantUID)
			}
		})
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "admin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"meshward.db", "admin/key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lockDataDir(dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{".": 0o700, "admin": 0o700, "meshward.db": 0o600, "admin/key.pem": 0o600}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v; want %v", name, fi.Mode().Perm(), mode)
		}
	}
}

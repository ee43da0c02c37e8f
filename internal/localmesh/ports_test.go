package localmesh

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/config"
)

// TestCheckPortsNamesTheField: a stranger listening on an app's port (or an
// upstream listener's) is found before anything starts, and the error names
// the mesh file, line and field.
func TestCheckPortsNamesTheField(t *testing.T) {
	var strangers []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		strangers = append(strangers, ln)
	}
	busy1, busy2 := strangers[0].Addr().(*net.TCPAddr).Port, strangers[1].Addr().(*net.TCPAddr).Port
	free := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	yaml := fmt.Sprintf(`apiVersion: meshward.dev/v1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.local
  control: {listen: "127.0.0.1:%d"}
  dashboard: {listen: "127.0.0.1:%d"}
  services:
    - name: web
      port: %d
      command: [sleep, "60"]
      upstreams: [{service: api, listen: "127.0.0.1:%d"}]
    - name: api
      port: %d
      command: [sleep, "60"]
`, free(), free(), free(), busy1, busy2)
	mesh, err := config.ParseMesh("mesh.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckPorts(mesh)
	var list config.ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("CheckPorts = %v, want two errors", err)
	}
	for i, want := range []string{"mesh.yaml:12: spec.services[0].upstreams[0].listen", "mesh.yaml:14: spec.services[1].port"} {
		if got := list[i].Error(); !strings.HasPrefix(got, want) || !strings.Contains(got, "already in use") {
			t.Errorf("error %d = %q, want %s ... already in use", i, got, want)
		}
	}
	for _, ln := range strangers {
		ln.Close()
	}
	if err := CheckPorts(mesh); err != nil {
		t.Errorf("with the port free again: %v", err)
	}
}

package localmesh

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"meshward.dev/meshward/internal/config"
)

// CheckPorts tries every address the mesh will listen on (the control
// plane, the dashboard, each app's port and each sidecar's fixed
// listeners) before anything starts. A port another process holds is an
// error naming its field: with a stranger on an app's port, the app would
// die with EADDRINUSE while its sidecar forwarded mesh traffic, verified
// identity header included, to the stranger.
func CheckPorts(mesh *config.Mesh) error {
	type addr struct{ field, addr string }
	var addrs []addr
	add := func(field, a string) {
		if a != "" {
			addrs = append(addrs, addr{field, a})
		}
	}
	add("spec.control.listen", mesh.Control.Listen)
	add("spec.dashboard.listen", mesh.Dashboard.Listen)
	for i, s := range mesh.Services {
		f := fmt.Sprintf("spec.services[%d]", i)
		if len(s.Command) > 0 { // up starts the app: its port must be free
			add(f+".port", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
		}
		add(f+".inbound", s.Inbound)
		add(f+".expose", s.Expose)
		for j, u := range s.Upstreams {
			add(fmt.Sprintf("%s.upstreams[%d].listen", f, j), u.Listen)
		}
	}
	var errs config.ErrorList
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.addr)
		if err == nil {
			ln.Close()
			continue
		}
		msg := fmt.Sprintf("%s: %v", a.addr, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			msg = fmt.Sprintf("%s is already in use by another process (another meshward up of this mesh? see ss -ltnp); stop it or choose another port", a.addr)
		}
		errs = append(errs, &config.Error{File: mesh.File, Line: mesh.LineOf(a.field), Field: a.field, Msg: msg})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/identity"
)

// KindMesh is the kind of mesh.yaml.
const KindMesh = "Mesh"

// Protocols a service may declare.
const (
	ProtocolHTTP  = "http"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
	ProtocolTCP   = "tcp"
)

// Mesh is mesh.yaml: the services of a local mesh, how to start them, and
// where the control plane, dashboard and policies are. Defaults (see
// defaults.go) are applied by LoadMesh and ParseMesh.
type Mesh struct {
	// Name is metadata.name; File is where the mesh was read from (empty
	// when parsed from memory).
	Name string `yaml:"-" json:"name"`
	File string `yaml:"-" json:"-"`

	TrustDomain string    `yaml:"trustDomain" json:"trustDomain"`
	DataDir     string    `yaml:"dataDir" json:"dataDir"`
	Control     Listener  `yaml:"control" json:"control"`
	Dashboard   Listener  `yaml:"dashboard" json:"dashboard"`
	Policies    string    `yaml:"policies" json:"policies"`
	Services    []Service `yaml:"services" json:"services"`

	doc *Document
}

// LineOf is the line of a field of the mesh file (such as
// "spec.services[2]"), for messages about it; 0 when unknown.
func (m *Mesh) LineOf(field string) int {
	if m.doc == nil {
		return 0
	}
	return m.doc.LineOf(field)
}

// Listener is an address a component listens on.
type Listener struct {
	Listen string `yaml:"listen" json:"listen"`
}

// Service is one application of the mesh and its sidecar.
type Service struct {
	Name      string `yaml:"name" json:"name"`
	Namespace string `yaml:"namespace" json:"namespace"`
	// ServiceAccount is the account name in the service's identity
	// (spiffe://<td>/ns/<namespace>/sa/<serviceAccount>); empty means the
	// service's name (see Account). On Kubernetes the service account is
	// not the Service.
	ServiceAccount string `yaml:"serviceAccount" json:"serviceAccount,omitempty"`
	// Command starts the app (`meshward up`); empty means up does not start
	// it. MESHWARD_* environment variables tell the app its ports.
	Command []string          `yaml:"command" json:"command,omitempty"`
	Env     map[string]string `yaml:"env" json:"env,omitempty"`
	// User runs the app as this user (a name or a numeric uid); `up` must
	// then run as root. Empty: the app runs as the user running `up`.
	User string `yaml:"user" json:"user,omitempty"`
	// Port is where the app listens, plaintext, on loopback. AccessPolicy
	// to.ports refer to it.
	Port     int    `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`
	// AllowUpgrades are the HTTP/1.1 Upgrade protocols the sidecar
	// forwards to an http app besides websocket (such as tcp), after the
	// upgrade request passed policy; any other is refused, h2c always.
	AllowUpgrades []string `yaml:"allowUpgrades" json:"allowUpgrades,omitempty"`
	// Expose is an optional ingress listener for clients outside the mesh.
	Expose string `yaml:"expose" json:"expose,omitempty"`
	// Inbound is the sidecar's mTLS listener; empty means a free port.
	Inbound   string     `yaml:"inbound" json:"inbound,omitempty"`
	Upstreams []Upstream `yaml:"upstreams" json:"upstreams,omitempty"`
}

// Upstream is a local plaintext listener of the sidecar that carries
// traffic to another service over mTLS.
type Upstream struct {
	Service string `yaml:"service" json:"service"`
	Listen  string `yaml:"listen" json:"listen"`
}

// Account is the account name of the service's identity: ServiceAccount,
// or the service's name when that is empty.
func (s *Service) Account() string {
	if s.ServiceAccount != "" {
		return s.ServiceAccount
	}
	return s.Name
}

// ID is the service's SPIFFE ID in trust domain td.
func (s *Service) ID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return identity.ServiceID(td, s.Namespace, s.Account())
}

// ServiceByID returns the service whose identity is id, if there is one.
func (m *Mesh) ServiceByID(id spiffeid.ID) (*Service, bool) {
	td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
	if err != nil || !id.MemberOf(td) {
		return nil, false
	}
	ns, account, ok := identity.ParseServiceID(id)
	if !ok {
		return nil, false
	}
	for i := range m.Services {
		s := &m.Services[i]
		if s.Namespace == ns && s.Account() == account {
			return s, true
		}
	}
	return nil, false
}

// Service returns the service called name.
func (m *Mesh) Service(name string) (*Service, bool) {
	for i := range m.Services {
		if m.Services[i].Name == name {
			return &m.Services[i], true
		}
	}
	return nil, false
}

// Resolve returns p relative to the directory of the mesh file (p itself
// when absolute or when the mesh was not read from a file).
func (m *Mesh) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || m.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(m.File), p)
}

// PoliciesDir is the policies directory, resolved against the mesh file.
func (m *Mesh) PoliciesDir() string { return m.Resolve(m.Policies) }

// DataDirPath is the data directory, resolved against the mesh file.
func (m *Mesh) DataDirPath() string { return m.Resolve(m.DataDir) }

// LoadMesh reads, defaults and validates the mesh file at path.
func LoadMesh(path string) (*Mesh, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read mesh: %w", err)
	}
	if fi.Size() > MaxFileSize {
		return nil, (&Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)})
	}
	data, err := os.ReadFile(path) //nolint:gosec // the user names the file
	if err != nil {
		return nil, fmt.Errorf("read mesh: %w", err)
	}
	return ParseMesh(path, data)
}

// ParseMesh decodes, defaults and validates a mesh file's contents. It
// returns an ErrorList naming every problem.
func ParseMesh(name string, data []byte) (*Mesh, error) {
	docs, err := ParseFile(name, data)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, &Error{File: name, Msg: "no Mesh document in the file"}
	}
	var errs ErrorList
	var m *Mesh
	for _, d := range docs {
		if d.Kind != KindMesh {
			errs = append(errs, d.Errorf("kind", "%q does not belong in a mesh file (want %s)", d.Kind, KindMesh))
			continue
		}
		if m != nil {
			errs = append(errs, d.Errorf("kind", "a second Mesh document; a mesh file holds exactly one"))
			continue
		}
		m = &Mesh{Name: d.Metadata.Name, File: name, doc: d}
		if d.Metadata.Namespace != "" {
			errs = append(errs, d.Errorf("metadata.namespace", "a Mesh has no namespace"))
		}
		derrs := Errors(d.DecodeSpec(m))
		m.applyDefaults()
		errs = append(errs, derrs.Merge(m.validate(d))...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Mesh) validate(d *Document) ErrorList {
	var errs ErrorList
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }

	if _, err := spiffeid.TrustDomainFromString(m.TrustDomain); err != nil || m.TrustDomain != lowerASCII(m.TrustDomain) {
		add("spec.trustDomain", "%q is not a valid trust domain (lower-case DNS name such as shop.local)", m.TrustDomain)
	}
	addrs := map[string]string{} // listen address -> field that uses it
	checkAddr := func(field, addr string, loopbackOnly bool) {
		if addr == "" {
			return
		}
		if err := checkListen(addr, loopbackOnly); err != nil {
			add(field, "%v", err)
			return
		}
		if other, dup := addrs[addr]; dup {
			add(field, "%s is already used by %s", addr, other)
			return
		}
		addrs[addr] = field
	}
	checkAddr("spec.control.listen", m.Control.Listen, false)
	checkAddr("spec.dashboard.listen", m.Dashboard.Listen, false)
	if len(m.Services) == 0 {
		add("spec.services", "at least one service is required")
	}
	names := map[string]int{}
	identities := map[string]int{} // "namespace/account" -> service index
	for i := range m.Services {
		s := &m.Services[i]
		f := fmt.Sprintf("spec.services[%d]", i)
		if s.Name == "" {
			add(f+".name", "is required")
		} else if err := ValidName(s.Name); err != nil {
			add(f+".name", "%v", err)
		} else if j, dup := names[s.Name]; dup {
			add(f+".name", "%q is already the name of spec.services[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
		if err := ValidName(s.Namespace); err != nil {
			add(f+".namespace", "%v", err)
		}
		if s.ServiceAccount != "" {
			if err := ValidName(s.ServiceAccount); err != nil {
				add(f+".serviceAccount", "%v", err)
			}
		}
		if j, ok := names[s.Name]; ok && j == i {
			// Each service its own identity: policies and the registry
			// tell services apart by it.
			key := s.Namespace + "/" + s.Account()
			if k, dup := identities[key]; dup {
				add(f+".serviceAccount", "%q in namespace %q is already the identity of spec.services[%d] (%s); each service needs its own", s.Account(), s.Namespace, k, m.Services[k].Name)
			} else {
				identities[key] = i
			}
		}
		if s.Port < 1 || s.Port > 65535 {
			add(f+".port", "%d is not a port (1-65535); the port the app listens on is required", s.Port)
		} else {
			checkAddr(f+".port", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), true)
		}
		switch s.Protocol {
		case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP:
		default:
			add(f+".protocol", "%q is not one of http, http2, grpc, tcp", s.Protocol)
		}
		for j, c := range s.Command {
			if c == "" && j == 0 {
				add(fmt.Sprintf("%s.command[%d]", f, j), "the program name is empty")
			}
		}
		for j, u := range s.AllowUpgrades {
			if s.Protocol != ProtocolHTTP {
				add(f+".allowUpgrades", "applies to protocol http only, not %s", s.Protocol)
				break
			}
			if err := ValidUpgrade(u); err != nil {
				add(fmt.Sprintf("%s.allowUpgrades[%d]", f, j), "%v", err)
			}
		}
		if s.User != "" && !validUser(s.User) {
			add(f+".user", "%q is not a user name or a numeric uid", s.User)
		}
		checkAddr(f+".expose", s.Expose, false)
		checkAddr(f+".inbound", s.Inbound, false)
	}
	for i := range m.Services {
		s := &m.Services[i]
		seen := map[string]bool{}
		for j, u := range s.Upstreams {
			f := fmt.Sprintf("spec.services[%d].upstreams[%d]", i, j)
			switch _, ok := names[u.Service]; {
			case u.Service == "":
				add(f+".service", "is required")
			case !ok:
				add(f+".service", "%q is not a service of this mesh", u.Service)
			case u.Service == s.Name:
				add(f+".service", "a service cannot be its own upstream")
			case seen[u.Service]:
				add(f+".service", "%q is listed twice", u.Service)
			}
			seen[u.Service] = true
			if u.Listen == "" {
				add(f+".listen", "is required (a loopback address such as 127.0.0.1:9001)")
			}
			checkAddr(f+".listen", u.Listen, true)
		}
	}
	return errs
}

// checkListen checks a host:port listen address. Loopback-only addresses
// (app ports, upstream listeners) carry plaintext and must not be reachable
// from the network.
func checkListen(addr string, loopbackOnly bool) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		host, port, serr := net.SplitHostPort(addr)
		if serr != nil || host != "localhost" {
			return fmt.Errorf("%q is not host:port with an IP address (like 127.0.0.1:9001)", addr)
		}
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil || port == "0" {
			return fmt.Errorf("%q: port must be 1-65535", addr)
		}
		return nil
	}
	if ap.Port() == 0 {
		return errors.New("port 0 is not allowed: name the port")
	}
	if loopbackOnly && !ap.Addr().IsLoopback() {
		return fmt.Errorf("%q must be a loopback address: this listener carries plaintext", addr)
	}
	return nil
}

// validUser accepts a numeric uid or a POSIX-style user name (letters,
// digits, '.', '_', '-', not starting with '-' or a digit-only name
// treated as a uid; at most 32 characters).
func validUser(u string) bool {
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		return n < 1<<31-1
	}
	if len(u) > 32 || u[0] == '-' {
		return false
	}
	for _, c := range u {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

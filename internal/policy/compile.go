package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/textproto"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
)

// Compile turns a validated Set into an immutable Engine.
func (s *Set) Compile() (*Engine, error) {
	td, err := spiffeid.TrustDomainFromString(s.Config.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("compile policy: trust domain: %w", err)
	}
	e := &Engine{
		cfg:      s.Config,
		td:       td,
		targets:  make(map[targetKey]*compiledPolicy, len(s.Policies)),
		now:      s.now,
		policies: s.Policies,
	}
	var errs config.ErrorList
	for _, p := range s.Policies {
		cp := &compiledPolicy{name: p.Name, mode: p.Spec.Mode, audit: p.Spec.Mode == ModeAudit, src: p}
		for i := range p.Spec.Rules {
			r, err := s.compileRule(td, p, &p.Spec.Rules[i])
			if err != nil {
				errs = append(errs, p.doc.Errorf(fmt.Sprintf("spec.rules[%d].when", i), "invalid CEL condition: %v", err))
				continue
			}
			cp.rules = append(cp.rules, r)
		}
		e.targets[targetKey{namespace: p.Namespace, service: p.Spec.Target}] = cp
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	e.version = s.version()
	return e, nil
}

func (s *Set) compileRule(td spiffeid.TrustDomain, p *AccessPolicy, r *Rule) (compiledRule, error) {
	cr := compiledRule{name: r.Name, td: td}
	for _, src := range r.From {
		switch {
		case src.Service != "":
			id, err := s.ServiceID(td, p.Namespace, src.Service)
			if err != nil {
				return cr, err
			}
			cr.ids = append(cr.ids, id)
		case src.Identity != "":
			id, err := spiffeid.FromString(src.Identity)
			if err != nil {
				return cr, err
			}
			cr.ids = append(cr.ids, id)
		case src.Namespace == "*":
			cr.anyNS = true
		default:
			cr.namespaces = append(cr.namespaces, src.Namespace)
		}
	}
	if len(r.To) == 0 {
		cr.anyOp = true
	}
	for i := range r.To {
		op := &r.To[i]
		co := compiledOp{ports: op.Ports, methods: op.Methods, l7: op.l7()}
		for _, path := range op.Paths {
			if prefix, ok := strings.CutSuffix(path, "*"); ok {
				co.prefixes = append(co.prefixes, prefix)
			} else {
				co.exact = append(co.exact, path)
			}
		}
		keys := make([]string, 0, len(op.Headers))
		for k := range op.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			co.headers = append(co.headers, headerMatch{key: textproto.CanonicalMIMEHeaderKey(k), value: op.Headers[k]})
		}
		if !co.l7 {
			cr.l4 = true
		}
		cr.ops = append(cr.ops, co)
	}
	if cr.anyOp {
		cr.l4 = true
	}
	if r.When != "" {
		c, err := s.condition(r.When) // programs are immutable: one per distinct text
		if err != nil {
			return cr, err
		}
		cr.cond = c
	}
	return cr, nil
}

// ServiceID is the identity a `{service: name}` source of a policy in
// namespace names: with the mesh known, that service's identity (which
// names its serviceAccount, when it sets one); otherwise, or for a service
// the mesh does not have, ns/<namespace>/sa/<name>.
func (s *Set) ServiceID(td spiffeid.TrustDomain, namespace, name string) (spiffeid.ID, error) {
	return serviceID(s.Mesh, td, namespace, name)
}

func serviceID(mesh *config.Mesh, td spiffeid.TrustDomain, namespace, name string) (spiffeid.ID, error) {
	if mesh != nil {
		if svc, ok := mesh.Service(name); ok && svc.Namespace == namespace {
			return svc.ID(td)
		}
	}
	return identity.ServiceID(td, namespace, name)
}

// canonical is what the version hashes: the effective configuration and
// policies, independent of file names, comments, key order and formatting.
type canonical struct {
	Config   MeshConfig      `json:"config"`
	Policies []*AccessPolicy `json:"policies"`
}

func (s *Set) version() string {
	b, err := json.Marshal(canonical{Config: s.Config, Policies: s.Policies})
	if err != nil {
		// Only plain data is marshaled; this cannot happen.
		panic(fmt.Sprintf("policy: marshal canonical form: %v", err))
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

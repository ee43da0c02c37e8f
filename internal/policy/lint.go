package policy

import (
	"fmt"
	"net/textproto"
	"slices"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
)

// Lint checks, each the Check of a Warning.
const (
	CheckWeakMTLS       = "weak-mtls"
	CheckDefaultAllow   = "default-allow"
	CheckWeakPaths      = "weak-path-normalization"
	CheckAuditMode      = "audit-mode"
	CheckAnySource      = "any-source"
	CheckAnyPath        = "any-path"
	CheckAllMethods     = "all-methods"
	CheckAnyOperation   = "any-operation"
	CheckShadowed       = "shadowed-rule"
	CheckUnreachable    = "unreachable-rule"
	CheckNoPolicy       = "no-policy"
	CheckForeignTDCalls = "foreign-trust-domain"
)

// Warning is something Lint finds worth a second look in a valid set.
type Warning struct {
	File  string `json:"file"`
	Line  int    `json:"line"`
	Field string `json:"field,omitempty"`
	Check string `json:"check"`
	Msg   string `json:"message"`
}

func (w Warning) String() string {
	e := config.Error{File: w.File, Line: w.Line, Field: w.Field, Msg: w.Msg + " [" + w.Check + "]"}
	return e.Error()
}

// Lint returns the warnings for a valid set, sorted by file and line:
// weakened MeshConfig defaults, audit-mode policies, overly broad rules (any
// source, any path, all methods), rules shadowed by an earlier rule or
// unreachable, and, with a mesh, services without a policy and sources that
// are not services of the mesh.
func Lint(s *Set) []Warning {
	var ws []Warning
	warn := func(d *config.Document, field, check, format string, args ...any) {
		file, line := "", 0
		if d != nil {
			file, line = d.File, d.LineOf(field)
		}
		ws = append(ws, Warning{File: file, Line: line, Field: field, Check: check, Msg: fmt.Sprintf(format, args...)})
	}
	c, cd := &s.Config, s.configDoc
	if PermissiveMTLS(c.MTLS) {
		// What permissive means is one sentence, the same as the scanner's
		// MW-MESHWARD-001 and docs/configuration.md: asked for, not honoured.
		msg := "mtls: permissive asks sidecars to accept plaintext callers until " + c.PermissiveUntil + "; sidecars of this release still refuse plaintext"
		if !c.mtlsPermissive(s.now()) {
			msg += " (expired: remove it)"
		}
		warn(cd, "spec.mtls", CheckWeakMTLS, "%s", msg)
	}
	if DefaultAllow(c.DefaultAction) {
		warn(cd, "spec.defaultAction", CheckDefaultAllow, "defaultAction: allow lets any workload call every service without a policy")
	}
	if WeakPathNormalization(c.PathNormalization) {
		warn(cd, "spec.pathNormalization", CheckWeakPaths, "pathNormalization: permissive lets ';' path parameters through (\"..;\" bypasses on Tomcat/Jetty)")
	}
	td, _ := spiffeid.TrustDomainFromString(c.TrustDomain)
	for _, p := range s.Policies {
		d := p.doc
		svc := s.meshService(p)
		shadows := newShadowIndex(s.Mesh, p, td)
		if AuditMode(p.Spec.Mode) {
			warn(d, "spec.mode", CheckAuditMode, "policy %s is in audit mode: denials are logged, not enforced", p.Name)
		}
		for i := range p.Spec.Rules {
			r := &p.Spec.Rules[i]
			f := fmt.Sprintf("spec.rules[%d]", i)
			reachableSources := 0
			for j, src := range r.From {
				sf := fmt.Sprintf("%s.from[%d]", f, j)
				switch {
				case src.Namespace == "*":
					warn(d, sf+".namespace", CheckAnySource, "rule %s allows any workload of %s", r.Name, c.TrustDomain)
				case src.Identity != "":
					if id, err := spiffeid.FromString(src.Identity); err == nil && !id.MemberOf(td) {
						warn(d, sf+".identity", CheckForeignTDCalls, "%s is not in trust domain %s: sidecars refuse its handshake, so this source never matches", src.Identity, c.TrustDomain)
						continue
					}
				}
				reachableSources++
			}
			tcp := svc != nil && svc.Protocol == config.ProtocolTCP
			switch {
			case len(r.To) > 0:
			case tcp: // a tcp service has no methods or paths to warn about
				warn(d, f, CheckAnyOperation, "rule %s has no `to`: any port", r.Name)
			default:
				warn(d, f, CheckAnyOperation, "rule %s has no `to`: any port, method and path", r.Name)
			}
			reachableOps := btoi(len(r.To) == 0)
			for j := range r.To {
				op := &r.To[j]
				of := fmt.Sprintf("%s.to[%d]", f, j)
				ok := true
				if svc != nil && len(op.Ports) > 0 && !containsInt(op.Ports, svc.Port) {
					warn(d, of+".ports", CheckUnreachable, "%s listens on port %d only; this operation never matches", p.Spec.Target, svc.Port)
					ok = false
				}
				if tcp && op.l7() {
					warn(d, of, CheckUnreachable, "%s is a tcp service: methods, paths and headers never match", p.Spec.Target)
					ok = false
				}
				if !tcp && ok {
					if len(op.Paths) == 0 || contains(op.Paths, "/*") {
						warn(d, of, CheckAnyPath, "rule %s allows any path", r.Name)
					}
					if len(op.Methods) == 0 {
						warn(d, of, CheckAllMethods, "rule %s allows all methods", r.Name)
					}
				}
				reachableOps += btoi(ok)
			}
			if reachableSources == 0 || reachableOps == 0 {
				warn(d, f, CheckUnreachable, "rule %s can never match", r.Name)
				continue
			}
			for _, k := range shadows.candidates(r, i) {
				if ruleCovers(s.Mesh, p, &p.Spec.Rules[k], r, td) {
					warn(d, f, CheckShadowed, "rule %s is shadowed by rule %s above it, which allows everything it does", r.Name, p.Spec.Rules[k].Name)
					break
				}
			}
		}
	}
	if s.Mesh != nil {
		protected := map[string]bool{}
		for _, p := range s.Policies {
			protected[p.Namespace+"/"+p.Spec.Target] = true
		}
		for i, svc := range s.Mesh.Services {
			if !protected[svc.Namespace+"/"+svc.Name] {
				what := "every call to it is denied"
				if c.DefaultAction == ActionAllow {
					what = "every call to it is allowed (defaultAction: allow)"
				}
				ws = append(ws, Warning{File: s.Mesh.File, Line: meshServiceLine(s.Mesh, i), Field: fmt.Sprintf("spec.services[%d]", i), Check: CheckNoPolicy,
					Msg: fmt.Sprintf("service %s/%s has no AccessPolicy: %s", svc.Namespace, svc.Name, what)})
			}
		}
	}
	sort.SliceStable(ws, func(i, j int) bool {
		if ws[i].File != ws[j].File {
			return ws[i].File < ws[j].File
		}
		return ws[i].Line < ws[j].Line
	})
	return ws
}

func meshServiceLine(m *config.Mesh, i int) int { return m.LineOf(fmt.Sprintf("spec.services[%d]", i)) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Set) meshService(p *AccessPolicy) *config.Service {
	if s.Mesh == nil {
		return nil
	}
	if svc, ok := s.Mesh.Service(p.Spec.Target); ok && svc.Namespace == p.Namespace {
		return svc
	}
	return nil
}

// shadowIndex finds, for a rule, the rules of its policy that could cover
// it, so the shadowing check is not every pair of rules (24 s for 6,000
// rules). A rule that covers b must cover b's first source and b's first
// path, so rules are filed under each source they name and each path (or
// "any path"), and a lookup reads only the keys that could cover those.
type shadowIndex struct {
	byKey map[string][]int // source key + "\x00" + path key -> rule indexes, ascending
	mesh  *config.Mesh
	ns    string
	td    spiffeid.TrustDomain
}

func newShadowIndex(mesh *config.Mesh, p *AccessPolicy, td spiffeid.TrustDomain) *shadowIndex {
	x := &shadowIndex{byKey: map[string][]int{}, mesh: mesh, ns: p.Namespace, td: td}
	for i := range p.Spec.Rules {
		r := &p.Spec.Rules[i]
		var paths []string
		for _, op := range r.To {
			if len(op.Paths) == 0 {
				paths = nil
				break
			}
			for _, pa := range op.Paths {
				if pre, ok := strings.CutSuffix(pa, "*"); ok {
					paths = append(paths, "pre:"+pre)
				} else {
					paths = append(paths, "eq:"+pa)
				}
			}
		}
		if paths == nil {
			paths = []string{"any"}
		}
		for _, src := range r.From {
			sk := x.sourceKey(src)
			for _, pk := range paths {
				k := sk + "\x00" + pk
				if l := x.byKey[k]; len(l) == 0 || l[len(l)-1] != i {
					x.byKey[k] = append(l, i)
				}
			}
		}
	}
	return x
}

func (x *shadowIndex) sourceKey(s Source) string {
	if s.Namespace != "" {
		return "ns:" + s.Namespace
	}
	if id, ok := sourceID(x.mesh, x.ns, s, x.td); ok {
		return "id:" + id.String()
	}
	return "none"
}

// candidates returns, in order, the rules before rule i that might cover r.
func (x *shadowIndex) candidates(r *Rule, i int) []int {
	if len(r.From) == 0 {
		return nil
	}
	src := r.From[0]
	sources := []string{"ns:*"}
	switch {
	case src.Namespace != "":
		if src.Namespace != "*" {
			sources = append(sources, "ns:"+src.Namespace)
		}
	default:
		id, ok := sourceID(x.mesh, x.ns, src, x.td)
		if !ok {
			return nil
		}
		sources = append(sources, "id:"+id.String())
		if ns, _, ok := identity.ParseServiceID(id); ok && id.MemberOf(x.td) {
			sources = append(sources, "ns:"+ns)
		}
	}
	paths := []string{"any"}
	if len(r.To) > 0 && len(r.To[0].Paths) > 0 {
		pb := r.To[0].Paths[0]
		paths = append(paths, "eq:"+pb)
		trimmed := strings.TrimSuffix(pb, "*")
		for n := 0; n <= len(trimmed); n++ {
			paths = append(paths, "pre:"+trimmed[:n])
		}
	}
	var out []int
	for _, sk := range sources {
		for _, pk := range paths {
			for _, k := range x.byKey[sk+"\x00"+pk] {
				if k >= i {
					break
				}
				out = append(out, k)
			}
		}
	}
	sort.Ints(out)
	return slices.Compact(out)
}

// ruleCovers reports whether rule a allows everything rule b allows (so b,
// after a, never decides).
func ruleCovers(mesh *config.Mesh, p *AccessPolicy, a, b *Rule, td spiffeid.TrustDomain) bool {
	if a.When != "" && a.When != b.When {
		return false
	}
	for _, sb := range b.From {
		covered := false
		for _, sa := range a.From {
			if sourceCovers(mesh, p.Namespace, sa, sb, td) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	if len(a.To) == 0 {
		return true
	}
	if len(b.To) == 0 {
		return false
	}
	for i := range b.To {
		covered := false
		for j := range a.To {
			if opCovers(&a.To[j], &b.To[i]) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// sourceID is the identity a {service} or {identity} source names.
func sourceID(mesh *config.Mesh, ns string, s Source, td spiffeid.TrustDomain) (spiffeid.ID, bool) {
	switch {
	case s.Service != "":
		id, err := serviceID(mesh, td, ns, s.Service)
		return id, err == nil
	case s.Identity != "":
		id, err := spiffeid.FromString(s.Identity)
		return id, err == nil
	}
	return spiffeid.ID{}, false
}

func sourceCovers(mesh *config.Mesh, ns string, a, b Source, td spiffeid.TrustDomain) bool {
	if a.Namespace == "" {
		ida, oka := sourceID(mesh, ns, a, td)
		idb, okb := sourceID(mesh, ns, b, td)
		return oka && okb && ida == idb
	}
	if b.Namespace != "" {
		return a.Namespace == "*" || a.Namespace == b.Namespace
	}
	idb, ok := sourceID(mesh, ns, b, td)
	if !ok || !idb.MemberOf(td) {
		return false
	}
	bns, _, ok := identity.ParseServiceID(idb)
	return ok && (a.Namespace == "*" || a.Namespace == bns)
}

func opCovers(a, b *Operation) bool {
	if len(a.Ports) > 0 && (len(b.Ports) == 0 || !subsetInts(b.Ports, a.Ports)) {
		return false
	}
	if len(a.Methods) > 0 && (len(b.Methods) == 0 || !subsetStrings(b.Methods, a.Methods)) {
		return false
	}
	if len(a.Paths) > 0 {
		if len(b.Paths) == 0 {
			return false
		}
		for _, pb := range b.Paths {
			covered := false
			for _, pa := range a.Paths {
				if pathCovers(pa, pb) {
					covered = true
					break
				}
			}
			if !covered {
				return false
			}
		}
	}
	for k, v := range a.Headers {
		found := false
		for kb, vb := range b.Headers {
			if textproto.CanonicalMIMEHeaderKey(k) == textproto.CanonicalMIMEHeaderKey(kb) && v == vb {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func pathCovers(a, b string) bool {
	pa, aPrefix := strings.CutSuffix(a, "*")
	if !aPrefix {
		return a == b
	}
	return strings.HasPrefix(strings.TrimSuffix(b, "*"), pa)
}

func subsetInts(sub, super []int) bool {
	for _, v := range sub {
		if !containsInt(super, v) {
			return false
		}
	}
	return true
}

func subsetStrings(sub, super []string) bool {
	for _, v := range sub {
		if !contains(super, v) {
			return false
		}
	}
	return true
}

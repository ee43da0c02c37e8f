package policy

import (
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
)

// Engine is a compiled policy set. It is immutable and safe for concurrent
// use; to change policy, compile a new Engine and swap the pointer.
// A nil or empty Engine denies everything.
type Engine struct {
	version  string
	cfg      MeshConfig
	td       spiffeid.TrustDomain
	targets  map[targetKey]*compiledPolicy
	now      func() time.Time
	policies []*AccessPolicy
}

type targetKey struct{ namespace, service string }

type compiledPolicy struct {
	name  string
	mode  string
	audit bool
	rules []compiledRule
	src   *AccessPolicy
}

type compiledRule struct {
	name       string
	td         spiffeid.TrustDomain
	ids        []spiffeid.ID // exact callers ({service} and {identity})
	namespaces []string      // workloads of namespace N in td ({namespace: N})
	anyNS      bool          // {namespace: "*"}: any workload of td
	anyOp      bool          // no `to`: any port and operation
	l4         bool          // some operation can match a request without HTTP
	ops        []compiledOp
	cond       *condition
}

type compiledOp struct {
	ports    []int
	methods  []string
	exact    []string
	prefixes []string // "/x/" for "/x/*"
	headers  []headerMatch
	l7       bool
}

type headerMatch struct {
	key   string // canonical MIME form, as net/http stores it
	value string
}

// Version is the sha256 of the canonical form of the configuration and
// policies ("sha256:<hex>"): the same for the same effective policy whatever
// the files' names, comments and formatting.
func (e *Engine) Version() string {
	if e == nil {
		return ""
	}
	return e.version
}

// Config is the effective MeshConfig (defaults filled in).
func (e *Engine) Config() MeshConfig {
	if e == nil {
		return DefaultMeshConfig()
	}
	return e.cfg
}

// Policies are the compiled AccessPolicies, sorted by namespace and name.
func (e *Engine) Policies() []*AccessPolicy {
	if e == nil {
		return nil
	}
	return e.policies
}

// MTLSPermissive reports whether the MeshConfig allows plaintext at now
// (mtls: permissive and the expiry date has not passed).
func (e *Engine) MTLSPermissive(now time.Time) bool {
	return e != nil && e.cfg.mtlsPermissive(now)
}

// NormalizePath is NormalizePath under the MeshConfig's pathNormalization:
// permissive lets ';' path parameters through; everything else is the same.
func (e *Engine) NormalizePath(p string) (string, error) {
	return normalizePath(p, e != nil && e.cfg.PathNormalization == PathPermissive)
}

var denyNoEngine = Decision{Rule: RuleDefaultDeny, Mode: ModeEnforce}

// Decide decides r. The first rule of the destination's policy that matches
// allows; when none does, the policy's default (deny) decides, which in
// audit mode allows with WouldDeny set. A destination without a policy gets
// the MeshConfig's defaultAction (deny unless written otherwise). An empty
// Destination.Namespace means "default".
//
// Decide does not allocate unless a matching rule has a `when` condition.
func (e *Engine) Decide(r *Request) Decision {
	if e == nil || r == nil {
		return denyNoEngine
	}
	p := e.targets[targetKey{namespace: destNamespace(r.Destination), service: r.Destination.Service}]
	if p == nil {
		if e.cfg.DefaultAction == ActionAllow {
			return Decision{Allow: true, Rule: RuleDefaultAllow, Mode: ModeEnforce}
		}
		return denyNoEngine
	}
	var spent uint64 // CEL cost of this request so far
	for i := range p.rules {
		rule := &p.rules[i]
		if !rule.matches(r) {
			continue
		}
		if rule.cond == nil {
			return Decision{Allow: true, Policy: p.name, Rule: rule.name, Mode: p.mode}
		}
		if spent >= celRequestBudget {
			break // the request spent its budget: no more conditions, deny
		}
		ok, cost := rule.cond.eval(r, e.now())
		spent += cost
		if ok {
			return Decision{Allow: true, Policy: p.name, Rule: rule.name, Mode: p.mode}
		}
	}
	if p.audit {
		return Decision{Allow: true, Policy: p.name, Rule: RuleDefaultDeny, Mode: ModeAudit, WouldDeny: true}
	}
	return Decision{Policy: p.name, Rule: RuleDefaultDeny, Mode: ModeEnforce}
}

func destNamespace(d Destination) string {
	if d.Namespace == "" {
		return config.DefaultNamespace
	}
	return d.Namespace
}

// matches checks everything but the condition.
func (r *compiledRule) matches(req *Request) bool {
	if req.HTTP == nil && !r.l4 {
		return false
	}
	return r.matchSource(req.Source) && r.matchOp(req)
}

func (r *compiledRule) matchSource(id spiffeid.ID) bool {
	for i := range r.ids {
		if r.ids[i] == id {
			return true
		}
	}
	if (r.anyNS || len(r.namespaces) > 0) && id.MemberOf(r.td) {
		ns, _, ok := identity.ParseServiceID(id)
		if !ok {
			return false
		}
		if r.anyNS {
			return true
		}
		for _, n := range r.namespaces {
			if n == ns {
				return true
			}
		}
	}
	return false
}

func (r *compiledRule) matchOp(req *Request) bool {
	if r.anyOp {
		return true
	}
	for i := range r.ops {
		if r.ops[i].matches(req) {
			return true
		}
	}
	return false
}

func (o *compiledOp) matches(req *Request) bool {
	if len(o.ports) > 0 && !containsInt(o.ports, req.Destination.Port) {
		return false
	}
	h := req.HTTP
	if h == nil {
		return !o.l7
	}
	if len(o.methods) > 0 && !containsString(o.methods, h.Method) {
		return false
	}
	if len(o.exact)+len(o.prefixes) > 0 && !o.matchPath(h.Path) {
		return false
	}
	for _, hm := range o.headers {
		v := h.Headers[hm.key]
		if len(v) != 1 || v[0] != hm.value {
			return false // absent, different, or repeated (ambiguous)
		}
	}
	return true
}

func (o *compiledOp) matchPath(p string) bool {
	for _, x := range o.exact {
		if p == x {
			return true
		}
	}
	for _, x := range o.prefixes {
		if strings.HasPrefix(p, x) {
			return true
		}
	}
	return false
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

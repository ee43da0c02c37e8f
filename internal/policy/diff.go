package policy

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
)

// Grant is one kind of call a policy set allows: a source calling a target
// on a port with a method and path (and headers). Wildcards are "*": any
// workload, any port, any method; "/x/*" is any path under /x/. Method and
// Path are "-" for an L4 (connection) grant.
type Grant struct {
	Source    string `json:"source"` // SPIFFE ID, "spiffe://td/ns/N/*" or "*"
	Target    string `json:"target"` // namespace/service
	Port      string `json:"port"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Headers   string `json:"headers,omitempty"`   // "name=value,..." required headers
	Condition string `json:"condition,omitempty"` // the CEL `when` the grant depends on
	Rule      string `json:"rule"`                // policy/rule that grants it
}

func (g Grant) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s -> %s:%s %s %s", g.Source, g.Target, g.Port, g.Method, g.Path)
	if g.Headers != "" {
		fmt.Fprintf(&b, " [%s]", g.Headers)
	}
	if g.Condition != "" {
		fmt.Fprintf(&b, " when %s", g.Condition)
	}
	fmt.Fprintf(&b, " (%s)", g.Rule)
	return b.String()
}

// Change is a grant that a policy change adds or removes. An added grant
// widens access, except when it only puts a condition on a grant the old set
// allowed unconditionally.
type Change struct {
	Added bool  `json:"added"`
	Widen bool  `json:"widen"`
	Grant Grant `json:"grant"`
}

// Wildcard probe values: never valid names, so they only match wildcards.
const (
	anyLabel   = "*"
	anyName    = "x--any--x"
	anyMethod  = "X-ANY-METHOD"
	anyPathSeg = "x--any--x"
)

type probeSource struct {
	id    spiffeid.ID
	label string
}

type probe struct {
	port, method, path, headers string // labels
	req                         Request
}

// Diff computes the blast radius of replacing old with next: the grants next
// allows that old did not (Widen) and those it no longer allows. It works on
// the compiled engines by deciding the same probe requests with both: every
// identity, namespace and wildcard the policies name as sources, crossed
// with every port, method, path prefix and header set they name. Conditions
// are assumed true (a grant that depends on one carries it), so a changed
// condition shows as the old grant removed and the new one added. mesh
// (optional) adds its services as sources and targets and their ports.
func Diff(old, next *Engine, mesh *config.Mesh) []Change {
	sources := map[string]probeSource{}
	targets := map[targetKey]bool{}
	ops := map[targetKey][]*compiledOp{}
	for _, e := range []*Engine{old, next} {
		if e == nil {
			continue
		}
		for k, p := range e.targets {
			targets[k] = true
			for i := range p.rules {
				r := &p.rules[i]
				for _, id := range r.ids {
					sources[id.String()] = probeSource{id: id, label: id.String()}
				}
				for _, ns := range r.namespaces {
					id, err := identity.ServiceID(r.td, ns, anyName)
					if err == nil {
						sources[id.String()] = probeSource{id: id, label: identity.NamespacePattern(r.td, ns)}
					}
				}
				if r.anyNS {
					id, err := identity.ServiceID(r.td, anyName, anyName)
					if err == nil {
						sources[id.String()] = probeSource{id: id, label: anyLabel}
					}
				}
				for j := range r.ops {
					ops[k] = append(ops[k], &r.ops[j])
				}
			}
		}
	}
	ports := map[targetKey]int{}
	if mesh != nil {
		td, err := spiffeid.TrustDomainFromString(mesh.TrustDomain)
		for _, s := range mesh.Services {
			k := targetKey{namespace: s.Namespace, service: s.Name}
			targets[k] = true
			ports[k] = s.Port
			if err == nil {
				if id, err := s.ID(td); err == nil {
					sources[id.String()] = probeSource{id: id, label: id.String()}
				}
			}
		}
	}
	// Grants are compared without the rule that grants them: renaming or
	// reordering rules is not a change of access.
	oldG, newG := map[Grant]string{}, map[Grant]string{}
	for k := range targets {
		probes := probesFor(k, ops[k], ports[k])
		for _, src := range sources {
			for i := range probes {
				pr := probes[i]
				pr.req.Source = src.id
				for _, side := range []struct {
					e *Engine
					m map[Grant]string
				}{{old, oldG}, {next, newG}} {
					ok, rule := side.e.decideForDiff(&pr.req)
					if !ok {
						continue
					}
					g := Grant{Source: src.label, Target: k.namespace + "/" + k.service, Port: pr.port, Method: pr.method,
						Path: pr.path, Headers: pr.headers, Condition: rule.cond}
					if _, dup := side.m[g]; !dup {
						side.m[g] = rule.name
					}
				}
			}
		}
	}
	var out []Change
	for g, rule := range newG {
		if _, had := oldG[g]; !had {
			unconditional := g
			unconditional.Condition = ""
			_, narrowed := oldG[unconditional]
			g.Rule = rule
			out = append(out, Change{Added: true, Widen: !narrowed || g.Condition == "", Grant: g})
		}
	}
	for g, rule := range oldG {
		if _, has := newG[g]; !has {
			g.Rule = rule
			out = append(out, Change{Widen: false, Grant: g})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Added != b.Added {
			return a.Added
		}
		return a.Grant.String() < b.Grant.String()
	})
	return out
}

// probesFor builds the requests to decide for one target.
func probesFor(k targetKey, ops []*compiledOp, declaredPort int) []probe {
	seen := map[string]bool{}
	var out []probe
	add := func(port int, method, path string, hdrs []headerMatch) {
		pl := anyLabel
		if port != 0 {
			pl = strconv.Itoa(port)
		}
		p := probe{port: pl, req: Request{Destination: Destination{Service: k.service, Namespace: k.namespace, Port: port}}}
		if method == "" {
			p.method, p.path = "-", "-"
		} else {
			h := http.Header{}
			var hl []string
			for _, hm := range hdrs {
				h.Set(hm.key, hm.value)
				hl = append(hl, strings.ToLower(hm.key)+"="+hm.value)
			}
			p.headers = strings.Join(hl, ",")
			p.method, p.path = method, path
			if method == anyMethod {
				p.method = anyLabel
			}
			reqPath := path
			if strings.HasSuffix(path, "*") {
				reqPath = strings.TrimSuffix(path, "*") + anyPathSeg
			}
			p.req.HTTP = &HTTPRequest{Method: method, Path: reqPath, Headers: h}
		}
		key := p.port + " " + p.method + " " + p.path + " " + p.headers
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	portsOf := func(o *compiledOp) []int {
		if len(o.ports) > 0 {
			return o.ports
		}
		return []int{declaredPort}
	}
	basePorts := []int{declaredPort}
	for _, o := range ops {
		basePorts = append(basePorts, o.ports...)
	}
	for _, port := range basePorts {
		add(port, "", "", nil)                  // L4
		add(port, anyMethod, "/"+anyLabel, nil) // any L7 request
	}
	for _, o := range ops {
		methods := o.methods
		if len(methods) == 0 {
			methods = []string{anyMethod}
		}
		paths := append(append([]string{}, o.exact...), nil...)
		for _, pre := range o.prefixes {
			paths = append(paths, pre+"*")
		}
		if len(paths) == 0 {
			paths = []string{"/" + anyLabel}
		}
		for _, port := range portsOf(o) {
			if !o.l7 {
				add(port, "", "", nil)
			}
			for _, m := range methods {
				for _, p := range paths {
					add(port, m, p, o.headers)
				}
			}
		}
	}
	return out
}

type diffRule struct{ name, cond string }

// decideForDiff is Decide with conditions assumed true; it returns whether
// the request is allowed (audit mode counts as allowed: it is not enforced)
// and the rule that allows it.
func (e *Engine) decideForDiff(r *Request) (bool, diffRule) {
	if e == nil {
		return false, diffRule{}
	}
	p := e.targets[targetKey{namespace: destNamespace(r.Destination), service: r.Destination.Service}]
	if p == nil {
		return e.cfg.DefaultAction == ActionAllow, diffRule{name: RuleDefaultAllow}
	}
	for i := range p.rules {
		rule := &p.rules[i]
		if rule.matches(r) {
			c := ""
			if rule.cond != nil {
				c = rule.cond.src
			}
			return true, diffRule{name: p.name + "/" + rule.name, cond: c}
		}
	}
	if p.audit {
		return true, diffRule{name: p.name + "/" + RuleDefaultDeny + " (audit)"}
	}
	return false, diffRule{}
}

package dashboard

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
)

// Policies is the who-may-call-whom view of the policy in force.
type Policies struct {
	Revision  int64  `json:"revision"`
	Version   string `json:"version"`
	GitCommit string `json:"git_commit,omitempty"`
	// Error is set when the stored policy does not compile here (it
	// should not happen: the control plane compiled it before storing).
	Error string `json:"error,omitempty"`
	// Sources are the matrix rows, Targets its columns.
	Sources []Party `json:"sources"`
	Targets []Party `json:"targets"`
	// Grants are every kind of call the policy allows.
	Grants   []policy.Grant `json:"grants"`
	Policies []PolicyInfo   `json:"policies"`
	// Matrix[i][j] is what Sources[i] may do to Targets[j].
	Matrix [][]Cell `json:"-"`
}

// Party is a row or column of the matrix.
type Party struct {
	ID    string `json:"id"` // SPIFFE ID, pattern, or namespace/service for targets
	Label string `json:"label"`
}

// Cell is one source/target pair of the matrix.
type Cell struct {
	Allowed bool
	Audit   bool // allowed only because the target's policy is in audit mode
	Rules   []RuleRef
	Ops     []string // what is allowed, e.g. "GET /products/*"
	More    int      // operations not listed in Ops
	Title   string
}

// RuleRef names a rule and where on the page it is described.
type RuleRef struct {
	Name   string `json:"name"` // policy/rule
	Anchor string `json:"anchor"`
}

// PolicyInfo is one AccessPolicy as written.
type PolicyInfo struct {
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Target    string     `json:"target"`
	Mode      string     `json:"mode"`
	File      string     `json:"file"`
	Line      int        `json:"line"`
	Anchor    string     `json:"anchor"`
	Rules     []RuleInfo `json:"rules"`
}

// RuleInfo is one rule of an AccessPolicy.
type RuleInfo struct {
	Name   string   `json:"name"`
	Anchor string   `json:"anchor"`
	Line   int      `json:"line"`
	From   []string `json:"from"`
	To     []string `json:"to"`
	When   string   `json:"when,omitempty"`
}

// policyState is the compiled current policy, cached by version.
type policyState struct {
	view Policies
	// grants as compiled, for allows.
	grants []policy.Grant
	// targets are the mesh's services ("ns/name") by identity: a service's
	// identity may name a serviceAccount rather than the service.
	targets map[string]string
}

// allows reports whether some grant lets src (a SPIFFE ID) call dst (a
// SPIFFE ID).
func (p *policyState) allows(src, dst string) bool {
	if p == nil {
		return false
	}
	target, ok := p.targets[dst]
	if !ok {
		ns, svc := splitID(dst)
		target = ns + "/" + svc
	}
	for _, g := range p.grants {
		if g.Target == target && sourceMatches(g.Source, src) && !strings.HasSuffix(g.Rule, "(audit)") {
			return true
		}
	}
	return false
}

// sourceMatches reports whether a grant's source (an ID, a namespace
// pattern "spiffe://td/ns/N/*" or "*") covers the identity id.
func sourceMatches(pattern, id string) bool {
	switch {
	case pattern == id:
		return true
	case pattern == "*":
		return strings.HasPrefix(id, "spiffe://")
	case strings.HasSuffix(pattern, "/*"):
		pid, err := spiffeid.FromString(id)
		if err != nil {
			return false
		}
		ns, _, ok := identity.ParseServiceID(pid)
		return ok && identity.NamespacePattern(pid.TrustDomain(), ns) == pattern
	}
	return false
}

// CompilePolicy compiles the control plane's current policy version as the
// dashboard shows it: with policy.Compile, the mesh file `up` runs (nil
// outside up), the control plane's trust domain and the dashboard's clock.
// The registry's services are not checked (apply did that).
func CompilePolicy(pol *apiv1.Policy, mesh *config.Mesh, trustDomain string, now func() time.Time) (*policy.Engine, error) {
	return policy.Compile(policywire.Files(pol.GetFiles()), policy.Options{Mesh: mesh, TrustDomain: trustDomain, Now: now})
}

// policyView returns the current policy's view, compiling it again only
// when its version changed.
func (d *Dashboard) policyView(context.Context) *policyState {
	cur := d.cfg.Source.CurrentPolicy()
	key := ""
	if cur != nil {
		key = fmt.Sprintf("%d %s", cur.GetRevision(), cur.GetVersion())
	}
	d.polMu.Lock()
	defer d.polMu.Unlock()
	if d.pol != nil && d.polKey == key {
		return d.pol
	}
	st := &policyState{view: Policies{Sources: []Party{}, Targets: []Party{}, Grants: []policy.Grant{}, Policies: []PolicyInfo{}}}
	if cur != nil {
		st.view.Revision, st.view.Version, st.view.GitCommit = cur.GetRevision(), cur.GetVersion(), cur.GetGitCommit()
		e, err := CompilePolicy(cur, d.cfg.Mesh, d.cfg.Source.Status().GetTrustDomain(), d.cfg.Now)
		if err != nil {
			st.view.Error = err.Error()
		} else {
			for _, c := range policy.Diff(nil, e, d.cfg.Mesh) {
				st.grants = append(st.grants, c.Grant)
			}
			st.view.Grants = st.grants
			if st.view.Grants == nil {
				st.view.Grants = []policy.Grant{}
			}
			st.view.Policies = policyInfos(e)
		}
	}
	st.targets = d.meshTargets()
	buildMatrix(&st.view, st.targets)
	d.pol, d.polKey = st, key
	return st
}

// meshTargets are the mesh file's services ("ns/name") by SPIFFE ID (none
// without one).
func (d *Dashboard) meshTargets() map[string]string {
	m := d.cfg.Mesh
	if m == nil {
		return nil
	}
	td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for i := range m.Services {
		s := &m.Services[i]
		if id, err := s.ID(td); err == nil {
			out[id.String()] = s.Namespace + "/" + s.Name
		}
	}
	return out
}

// buildMatrix fills Sources, Targets and Matrix from the grants; services
// (target by SPIFFE ID) get a row and a column even when no rule names
// them.
func buildMatrix(v *Policies, services map[string]string) {
	srcs, tgts := map[string]bool{}, map[string]bool{}
	for id, target := range services {
		srcs[id] = true
		tgts[target] = true
	}
	for _, g := range v.Grants {
		srcs[g.Source] = true
		tgts[g.Target] = true
	}
	for _, p := range v.Policies {
		tgts[p.Namespace+"/"+p.Target] = true
	}
	for id := range srcs {
		v.Sources = append(v.Sources, Party{ID: id, Label: label(id)})
	}
	for t := range tgts {
		l := t
		if ns, svc, _ := strings.Cut(t, "/"); ns == "default" {
			l = svc
		}
		v.Targets = append(v.Targets, Party{ID: t, Label: l})
	}
	// Wildcard rows after the services.
	sort.Slice(v.Sources, func(i, j int) bool {
		a, b := v.Sources[i], v.Sources[j]
		wa, wb := strings.HasSuffix(a.ID, "*"), strings.HasSuffix(b.ID, "*")
		if wa != wb {
			return wb
		}
		return a.Label < b.Label
	})
	sort.Slice(v.Targets, func(i, j int) bool { return v.Targets[i].Label < v.Targets[j].Label })
	v.Matrix = make([][]Cell, len(v.Sources))
	for i, s := range v.Sources {
		v.Matrix[i] = make([]Cell, len(v.Targets))
		for j, t := range v.Targets {
			v.Matrix[i][j] = cellFor(v.Grants, s, t)
		}
	}
}

// maxCellOps is how many operations a cell lists before "+N more".
const maxCellOps = 3

func cellFor(grants []policy.Grant, s, t Party) Cell {
	var c Cell
	rules := map[string]bool{}
	var ops, all []string
	exactRow := !strings.HasSuffix(s.ID, "*")
	for _, g := range grants {
		if g.Target != t.ID {
			continue
		}
		if g.Source != s.ID && !(exactRow && sourceMatches(g.Source, s.ID)) { //nolint:staticcheck // QF1001: reads as "not an exact row the grant's source matches"
			continue
		}
		if strings.HasSuffix(g.Rule, "(audit)") {
			c.Audit = true
		} else {
			c.Allowed = true
		}
		if !rules[g.Rule] {
			rules[g.Rule] = true
			c.Rules = append(c.Rules, RuleRef{Name: g.Rule, Anchor: ruleAnchor(g.Rule)})
		}
		op := opText(g)
		if g.Source != s.ID {
			op += " (via " + label(g.Source) + ")"
		}
		all = append(all, op+" — "+g.Rule)
		ops = append(ops, op)
	}
	sort.Slice(c.Rules, func(i, j int) bool { return c.Rules[i].Name < c.Rules[j].Name })
	ops = dedupe(ops)
	if len(ops) > maxCellOps {
		c.More = len(ops) - maxCellOps
		ops = ops[:maxCellOps]
	}
	c.Ops = ops
	sort.Strings(all)
	switch {
	case c.Allowed:
		c.Title = label(s.ID) + " may call " + t.Label + ":\n" + strings.Join(dedupe(all), "\n")
	case c.Audit:
		c.Title = label(s.ID) + " → " + t.Label + ": not allowed, but the policy is in audit mode (allowed and logged)"
	default:
		c.Title = label(s.ID) + " may not call " + t.Label + " (default deny)"
	}
	return c
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// opText is a grant's operation in a few words.
func opText(g policy.Grant) string {
	port := ""
	if g.Port != "*" {
		port = " :" + g.Port
	}
	if g.Method == "-" {
		return "any connection" + port
	}
	m := g.Method
	if m == "*" {
		m = "any method"
	}
	p := g.Path
	if p == "/*" {
		p = "any path"
	}
	s := m + " " + p + port
	if g.Headers != "" {
		s += " [" + g.Headers + "]"
	}
	if g.Condition != "" {
		s += " when " + g.Condition
	}
	return s
}

// ruleAnchor is the element id of a rule ("policy/rule") on the policies
// page; the audit-mode default points at its policy.
func ruleAnchor(rule string) string {
	pol, r, _ := strings.Cut(rule, "/")
	if strings.HasSuffix(r, "(audit)") {
		return "policy-" + anchorSafe(pol)
	}
	return "rule-" + anchorSafe(pol) + "--" + anchorSafe(r)
}

func anchorSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func policyInfos(e *policy.Engine) []PolicyInfo {
	out := []PolicyInfo{}
	for _, p := range e.Policies() {
		pi := PolicyInfo{Name: p.Name, Namespace: p.Namespace, Target: p.Spec.Target, Mode: p.Spec.Mode, File: p.File(), Line: p.Line(),
			Anchor: "policy-" + anchorSafe(p.Name), Rules: []RuleInfo{}}
		if pi.Mode == "" {
			pi.Mode = "enforce"
		}
		for i, r := range p.Spec.Rules {
			ri := RuleInfo{Name: r.Name, Anchor: ruleAnchor(p.Name + "/" + r.Name), Line: p.Doc().LineOf(fmt.Sprintf("spec.rules[%d]", i)), When: r.When}
			for _, f := range r.From {
				switch {
				case f.Service != "":
					ri.From = append(ri.From, "service "+f.Service)
				case f.Identity != "":
					ri.From = append(ri.From, "identity "+f.Identity)
				case f.Namespace != "":
					ri.From = append(ri.From, "namespace "+f.Namespace)
				}
			}
			for _, o := range r.To {
				var parts []string
				if len(o.Ports) > 0 {
					parts = append(parts, "ports "+strings.Trim(fmt.Sprint(o.Ports), "[]"))
				}
				if len(o.Methods) > 0 {
					parts = append(parts, strings.Join(o.Methods, ","))
				}
				if len(o.Paths) > 0 {
					parts = append(parts, strings.Join(o.Paths, " "))
				}
				if len(o.Headers) > 0 {
					var hs []string
					for k, v := range o.Headers {
						hs = append(hs, k+"="+v)
					}
					sort.Strings(hs)
					parts = append(parts, "headers "+strings.Join(hs, ","))
				}
				ri.To = append(ri.To, strings.Join(parts, " "))
			}
			if len(ri.To) == 0 {
				ri.To = []string{"anything"}
			}
			pi.Rules = append(pi.Rules, ri)
		}
		out = append(out, pi)
	}
	return out
}

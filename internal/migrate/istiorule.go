package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/scan"
)

// methods are the HTTP methods meshward policies may name.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}

func validMethod(m string) bool {
	for _, x := range methods {
		if x == m {
			return true
		}
	}
	return false
}

// Source fields of Istio that rest on what meshward never sees (IP
// addresses, JWTs).
var istioUnmappedSource = []string{"ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "requestPrincipals", "notRequestPrincipals"}

// istioAllow translates the rules of an ALLOW policy: one meshward rule per
// (rule, from entry). Every construct is read (and reported) even when an
// earlier one already drops the rule.
func (im *importer) istioAllow(p *istioPolicy, ns string, pm *principals) []*rule {
	o := p.obj
	var out []*rule
	for i, r := range p.rules {
		rf := fmt.Sprintf("spec.rules.%d", i)
		if bad := istioShape(rf, r); bad != "" {
			im.note(Narrowed, o, bad, "has the wrong shape (Istio would reject the policy)", "the rule is dropped: it allows nothing")
			continue
		}
		ops, opWhen, opsOK := im.istioOps(o, rf, scan.List(r, "to"))
		when, whenOK := im.istioWhen(o, rf, scan.List(r, "when"), pm, false)
		froms := scan.List(r, "from")
		if len(froms) == 0 {
			froms = []any{map[string]any{"source": map[string]any{}}}
		}
		for j, f := range froms {
			ff := fmt.Sprintf("%s.from.%d.source", rf, j)
			from, fromWhen, ok := im.istioAllowSource(o, ff, scan.Map(f, "source"), ns, pm)
			if !ok || !opsOK || !whenOK {
				continue
			}
			name := o.Name
			if len(p.rules) > 1 {
				name += fmt.Sprintf("-r%d", i)
			}
			if len(froms) > 1 {
				name += fmt.Sprintf("-f%d", j)
			}
			nr := &rule{name: name, from: from, to: ops, origin: fmt.Sprintf("%s %s", o.Ref(), rf), hint: hintOf(r)}
			nr.when = append(append(append(nr.when, fromWhen...), opWhen...), when...)
			out = append(out, nr)
		}
	}
	return out
}

// hintOf is a request an Istio rule matches, for fields the operations
// cannot show (suffix paths, header conditions).
func hintOf(r any) sample {
	var s sample
	for _, t := range scan.List(r, "to") {
		if ps := scan.Strings(t, "operation.paths"); len(ps) > 0 && s.path == "" {
			s.path = concretePath(ps[0])
		}
	}
	for _, c := range scan.List(r, "when") {
		key := scan.Str(c, "key")
		if h, ok := strings.CutPrefix(key, "request.headers["); ok {
			if vals := scan.Strings(c, "values"); len(vals) > 0 && !strings.Contains(vals[0], "*") {
				if s.header == nil {
					s.header = map[string]string{}
				}
				s.header[strings.ToLower(strings.TrimSuffix(h, "]"))] = vals[0]
			}
		}
	}
	return s
}

// istioAllowSource translates one `source` of an ALLOW rule.
func (im *importer) istioAllowSource(o *scan.Object, f string, src map[string]any, ns string, pm *principals) ([]source, []string, bool) {
	for _, k := range istioUnmappedSource {
		if _, set := src[k]; set {
			what := "IP blocks"
			if strings.Contains(k, "Principals") {
				what = "JWT request principals"
			}
			im.note(Narrowed, o, f+"."+k, fmt.Sprintf("%s (%s) cannot be translated: meshward authorizes by SPIFFE identity only", k, what),
				"this source is dropped: the callers it names get no allow from it")
			return nil, nil, false
		}
	}
	var from []source
	var when []string
	ps, pset := src["principals"]
	nsl := scan.Strings(src, "namespaces")
	if pset {
		mapped, dropped := pm.mapAll(scan.Strings(ps, ""))
		if len(dropped) > 0 {
			im.note(Narrowed, o, f+".principals", fmt.Sprintf("principals %s are not in Istio's trust domain %s (or not SPIFFE-shaped)", strings.Join(dropped, ", "), strings.Join(pm.istio, ", ")),
				"dropped: meshward refuses the handshake of a foreign trust domain")
		}
		if len(mapped) == 0 {
			return nil, nil, false
		}
		if simple, ok := simpleSources(mapped, ns, pm.td); ok {
			from = simple
		} else {
			from = []source{{Namespace: "*"}}
			when = append(when, istioMatch("source.identity", mapped))
		}
	}
	if len(nsl) > 0 {
		if from == nil && !hasWildcard(nsl, true) && validNames(nsl) {
			for _, n := range nsl {
				from = append(from, source{Namespace: n})
			}
		} else {
			if from == nil {
				from = []source{{Namespace: "*"}}
			}
			when = append(when, istioMatch("source.namespace", nsl))
		}
	}
	if from == nil {
		from = []source{{Namespace: "*"}}
	}
	if np, set := src["notPrincipals"]; set {
		mapped, _ := pm.mapAll(scan.Strings(np, ""))
		when = append(when, not(istioMatch("source.identity", mapped)))
	}
	if nn := scan.Strings(src, "notNamespaces"); len(nn) > 0 {
		when = append(when, not(istioMatch("source.namespace", nn)))
	}
	return from, when, true
}

// simpleSources writes mapped principals as meshward sources when each is
// an exact ID, "*" or a whole namespace.
func simpleSources(mapped []string, ns, td string) ([]source, bool) {
	var out []source
	for _, m := range mapped {
		switch {
		case m == "*":
			out = append(out, source{Namespace: "*"})
		case strings.HasSuffix(m, "/sa/*"):
			n, ok := strings.CutPrefix(strings.TrimSuffix(m, "/sa/*"), "spiffe://"+td+"/ns/")
			if !ok || config.ValidName(n) != nil {
				return nil, false
			}
			out = append(out, source{Namespace: n})
		case strings.Contains(m, "*"):
			return nil, false
		default:
			n, s, ok := splitID(m, td)
			if ok && n == ns && config.ValidName(s) == nil {
				out = append(out, source{Service: s})
			} else {
				out = append(out, source{Identity: m})
			}
		}
	}
	return out, true
}

// splitID returns the namespace and service of spiffe://td/ns/N/sa/S.
func splitID(id, td string) (ns, svc string, ok bool) {
	if !strings.HasPrefix(id, "spiffe://"+td+"/") {
		return "", "", false
	}
	return identity.ParseServiceIDString(id)
}

// validNames reports whether every namespace is a meshward name or "*".
func validNames(nss []string) bool {
	for _, n := range nss {
		if n != "*" && config.ValidName(n) != nil {
			return false
		}
	}
	return true
}

func hasWildcard(vals []string, allowStar bool) bool {
	for _, v := range vals {
		if v == "*" && allowStar {
			continue
		}
		if strings.Contains(v, "*") {
			return true
		}
	}
	return false
}

// istioOps translates the `to` of an ALLOW rule. A field meshward
// operations cannot hold becomes a `when` conjunct when the rule has one
// operation; with several it drops that operation (narrower). ok is false
// when nothing is left of a non-empty `to`.
func (im *importer) istioOps(o *scan.Object, rf string, tos []any) ([]operation, []string, bool) {
	type translated struct {
		f     string
		op    operation
		conds []string
	}
	var done []translated
	for k, t := range tos {
		f := fmt.Sprintf("%s.to.%d.operation", rf, k)
		op := scan.Map(t, "operation")
		var out operation
		var conds []string
		drop := ""
		if _, set := op["hosts"]; set {
			drop = "hosts"
		}
		if _, set := op["notHosts"]; set {
			drop = "notHosts"
		}
		if drop != "" {
			im.note(Narrowed, o, f+"."+drop, drop+" cannot be translated: meshward decides per target service, not per Host header",
				"this operation is dropped: the requests it names get no allow from it")
			continue
		}
		for _, s := range scan.Strings(op, "ports") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65535 {
				drop = "ports"
				break
			}
			out.Ports = append(out.Ports, n)
		}
		if np := scan.Strings(op, "notPorts"); len(np) > 0 {
			var ns []int
			for _, s := range np {
				if n, err := strconv.Atoi(s); err == nil {
					ns = append(ns, n)
				}
			}
			conds = append(conds, not("destination.port in "+intList(ns)))
		}
		if ms, set := op["methods"]; set {
			var bad []string
			for _, m := range scan.Strings(ms, "") {
				switch {
				case m == "*":
					out.Methods = nil
					bad = nil
				case validMethod(m):
					out.Methods = append(out.Methods, m)
				default:
					bad = append(bad, m)
				}
			}
			if len(bad) > 0 {
				im.note(Narrowed, o, f+".methods", fmt.Sprintf("methods %s are not methods meshward policies name (%s)", strings.Join(bad, ", "), strings.Join(methods, ", ")),
					"dropped: requests with them get no allow")
				if len(out.Methods) == 0 {
					continue
				}
			}
		}
		if nm := scan.Strings(op, "notMethods"); len(nm) > 0 {
			base := out.Methods
			if base == nil {
				base = methods
			}
			var keep []string
			for _, m := range base {
				if !contains(nm, m) {
					keep = append(keep, m)
				}
			}
			if len(keep) == 0 {
				continue
			}
			out.Methods = keep
		}
		paths, pconds, ok := im.istioPaths(o, f, scan.Strings(op, "paths"))
		if !ok {
			continue
		}
		out.Paths = paths
		conds = append(conds, pconds...)
		if np := scan.Strings(op, "notPaths"); len(np) > 0 {
			conds = append(conds, `request.method != ""`, not(istioMatch("request.path", np)))
		}
		if drop != "" {
			im.note(Narrowed, o, f+"."+drop, drop+" is not valid", "this operation is dropped")
			continue
		}
		done = append(done, translated{f: f, op: out, conds: conds})
	}
	var ops []operation
	var when []string
	anyOp := false
	for _, d := range done {
		if len(d.conds) > 0 && len(done) > 1 {
			im.note(Narrowed, o, d.f, "a suffix path, notPaths or notPorts in one of several operations needs a condition meshward can only set per rule",
				"this operation is dropped: the requests it names get no allow from it")
			continue
		}
		when = append(when, d.conds...)
		if len(d.op.Ports)+len(d.op.Methods)+len(d.op.Paths)+len(d.op.Headers) == 0 {
			anyOp = true
		}
		ops = append(ops, d.op)
	}
	if len(tos) > 0 && len(ops) == 0 {
		return nil, nil, false
	}
	if anyOp {
		ops = nil // an operation without fields is any operation
	}
	return ops, when, true
}

// istioPaths maps Istio path patterns (exact, "prefix*", "*suffix", "*")
// to meshward paths (exact, "/prefix/*"), or to a condition when one is a
// suffix.
func (im *importer) istioPaths(o *scan.Object, f string, ps []string) ([]string, []string, bool) {
	if len(ps) == 0 {
		return nil, nil, true
	}
	var out []string
	var suffix bool
	for _, p := range ps {
		switch {
		case p == "*":
			return nil, nil, true // any path
		case strings.Contains(p, "{"):
			im.note(Narrowed, o, f+".paths", fmt.Sprintf("path template %q cannot be translated", p), "dropped: the requests it names get no allow")
		case strings.HasPrefix(p, "*"):
			suffix = true
		case strings.HasSuffix(p, "*"):
			pre := strings.TrimSuffix(p, "*")
			if !strings.HasSuffix(pre, "/") {
				if normalized(pre) {
					out = append(out, pre, pre+"/*")
					im.note(Narrowed, o, f+".paths", fmt.Sprintf("prefix %q also matches %s... (any continuation)", p, pre+"x"),
						fmt.Sprintf("written as %s and %s/*", pre, pre))
				} else {
					im.note(Narrowed, o, f+".paths", fmt.Sprintf("prefix %q is not a normalized path", p), "dropped")
				}
				continue
			}
			if normalized(strings.TrimSuffix(pre, "/")) || pre == "/" {
				out = append(out, pre+"*")
			} else {
				im.note(Narrowed, o, f+".paths", fmt.Sprintf("prefix %q is not a normalized path", p), "dropped")
			}
		default:
			if normalized(p) {
				out = append(out, p)
			} else {
				im.note(Narrowed, o, f+".paths", fmt.Sprintf("path %q is not normalized: meshward matches normalized paths only", p), "dropped")
			}
		}
	}
	if suffix {
		return nil, []string{istioMatch("request.path", ps)}, true
	}
	if len(out) == 0 {
		return nil, nil, false
	}
	return out, nil, true
}

func normalized(p string) bool {
	n, err := policy.NormalizePath(p)
	return err == nil && n == p && strings.HasPrefix(p, "/")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// istioWhen translates `when` conditions. For an ALLOW (deny false) a key
// meshward cannot see drops the rule; for a DENY it counts as true.
func (im *importer) istioWhen(o *scan.Object, rf string, conds []any, pm *principals, deny bool) ([]string, bool) {
	var out []string
	for k, c := range conds {
		f := fmt.Sprintf("%s.when.%d", rf, k)
		key := scan.Str(c, "key")
		vals, nvals := scan.Strings(c, "values"), scan.Strings(c, "notValues")
		var expr func([]string) string
		switch {
		case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]"):
			h := strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]")
			expr = func(v []string) string { return headerMatch(h, v) }
		case key == "source.principal":
			expr = func(v []string) string { m, _ := pm.mapAll(v); return istioMatch("source.identity", m) }
		case key == "source.namespace":
			expr = func(v []string) string { return istioMatch("source.namespace", v) }
		case key == "destination.port":
			expr = func(v []string) string {
				var ns []int
				for _, s := range v {
					if n, err := strconv.Atoi(s); err == nil {
						ns = append(ns, n)
					}
				}
				return "destination.port in " + intList(ns)
			}
		default:
			what := "a request attribute meshward does not authorize on"
			switch {
			case strings.HasPrefix(key, "request.auth."):
				what = "a JWT claim"
			case strings.HasSuffix(key, ".ip"):
				what = "an IP address"
			}
			if deny {
				im.note(Narrowed, o, f, fmt.Sprintf("condition on %s (%s) cannot be translated", key, what),
					"read as always true: the DENY matches more requests")
				continue
			}
			im.note(Narrowed, o, f, fmt.Sprintf("condition on %s (%s) cannot be translated", key, what),
				"the rule is dropped: the requests it allowed get no allow from it")
			return nil, false
		}
		if len(vals) > 0 {
			out = append(out, expr(vals))
		}
		if len(nvals) > 0 {
			out = append(out, not(expr(nvals)))
		}
	}
	return out, true
}

package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

// istioDenyRule is the predicate of one DENY (or CUSTOM) rule over the
// request, and a request it denies for a test case (nil when none is
// obvious). Fields meshward cannot see count as true.
func (im *importer) istioDenyRule(p *istioPolicy, i int, r any, pm *principals) (string, *sample) {
	o := p.obj
	rf := fmt.Sprintf("spec.rules.%d", i)
	if bad := istioShape(rf, r); bad != "" {
		im.note(Narrowed, o, bad, "has the wrong shape (Istio would reject the policy)", "read as matching every request: the DENY applies to all of them")
		return "true", nil
	}
	var parts []string
	var fromPs []string
	var samp sample
	for j, f := range scan.List(r, "from") {
		ff := fmt.Sprintf("%s.from.%d.source", rf, j)
		src := scan.Map(f, "source")
		var c []string
		for _, k := range istioUnmappedSource {
			if _, set := src[k]; set {
				im.note(Narrowed, o, ff+"."+k, k+" cannot be translated: meshward authorizes by SPIFFE identity only",
					"read as matching every caller: the DENY applies to all of them")
			}
		}
		if ps, set := src["principals"]; set {
			mapped, _ := pm.mapAll(scan.Strings(ps, ""))
			c = append(c, istioMatch("source.identity", mapped))
			for _, m := range mapped {
				if !strings.Contains(m, "*") && samp.from == "" {
					samp.from = m
				}
			}
		}
		if n := scan.Strings(src, "namespaces"); len(n) > 0 {
			c = append(c, istioMatch("source.namespace", n))
		}
		if np, set := src["notPrincipals"]; set {
			vals := scan.Strings(np, "")
			if len(vals) == 1 && vals[0] == "*" {
				im.noteOnce(Info, o, ff+".notPrincipals", "DENY of callers without a principal (plaintext)",
					"nothing to translate: meshward's strict mTLS refuses every plaintext caller")
			}
			mapped, _ := pm.mapAll(vals)
			c = append(c, not(istioMatch("source.identity", mapped)))
		}
		if nn := scan.Strings(src, "notNamespaces"); len(nn) > 0 {
			c = append(c, not(istioMatch("source.namespace", nn)))
		}
		fromPs = append(fromPs, and(c))
	}
	if len(fromPs) > 0 {
		parts = append(parts, or(fromPs))
	}
	var opPs []string
	for k, t := range scan.List(r, "to") {
		f := fmt.Sprintf("%s.to.%d.operation", rf, k)
		op := scan.Map(t, "operation")
		var c, h []string
		for _, key := range []string{"hosts", "notHosts"} {
			if _, set := op[key]; set {
				im.note(Narrowed, o, f+"."+key, key+" cannot be translated: meshward decides per target service, not per Host header",
					"read as matching every host: the DENY applies to all of them")
			}
		}
		if ps := scan.Strings(op, "ports"); len(ps) > 0 {
			c = append(c, "destination.port in "+intList(atois(ps)))
			if samp.port == 0 {
				samp.port = atois(ps)[0]
			}
		}
		if ps := scan.Strings(op, "notPorts"); len(ps) > 0 {
			c = append(c, not("destination.port in "+intList(atois(ps))))
		}
		if ms := scan.Strings(op, "methods"); len(ms) > 0 {
			h = append(h, istioMatch("request.method", ms))
			if samp.method == "" && validMethod(ms[0]) {
				samp.method = ms[0]
			}
		}
		if ms := scan.Strings(op, "notMethods"); len(ms) > 0 {
			h = append(h, not(istioMatch("request.method", ms)))
		}
		if ps := scan.Strings(op, "paths"); len(ps) > 0 {
			h = append(h, istioMatch("request.path", ps))
			if samp.path == "" {
				samp.path = concretePath(ps[0])
			}
		}
		if ps := scan.Strings(op, "notPaths"); len(ps) > 0 {
			h = append(h, not(istioMatch("request.path", ps)))
		}
		if len(h) > 0 {
			c = append(c, l7(and(h)))
		}
		opPs = append(opPs, and(c))
	}
	if len(opPs) > 0 {
		parts = append(parts, or(opPs))
	}
	when, _ := im.istioWhen(o, rf, scan.List(r, "when"), pm, true)
	for _, w := range when {
		if strings.Contains(w, "request.headers") {
			w = l7(w)
		}
		parts = append(parts, w)
	}
	pred := and(parts)
	if pred == "true" && p.action == "DENY" {
		im.noteOnce(Info, o, rf, "DENY rule that matches every request", "every allow rule of its targets is dropped")
	}
	if samp.path == "" && samp.method == "" && samp.from == "" {
		return pred, nil
	}
	return pred, &samp
}

func atois(ss []string) []int {
	var out []int
	for _, s := range ss {
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// concretePath is a path an Istio or meshward path pattern matches.
func concretePath(p string) string {
	switch {
	case p == "*":
		return "/"
	case strings.HasSuffix(p, "*"):
		return strings.TrimSuffix(p, "*") + "import-probe"
	case strings.HasPrefix(p, "*"):
		return "/import-probe" + strings.TrimPrefix(p, "*")
	}
	return p
}

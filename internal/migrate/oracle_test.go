package migrate

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/scan"
)

// The oracles below decide a request the way the source mesh would,
// written from Istio's and Consul's documentation without the importer's
// code. Where the request space does not model a field (IP blocks, JWTs,
// hosts, external authorizers) they lean towards allow, so that "the
// import allows ⇒ the source allows" is a necessary condition of never
// widening.

type probeReq struct {
	ns, sa  string // the caller
	method  string
	path    string
	port    int
	headers map[string]string
}

// istioOracle decides requests to workloads with Istio's semantics.
type istioOracle struct {
	m      *scan.Model
	td     string   // Istio's trust domain
	alias  []string // its aliases
	policy []*scan.Object
}

func newIstioOracle(m *scan.Model) *istioOracle {
	o := &istioOracle{m: m, td: "cluster.local"}
	for _, cm := range m.Kind("ConfigMap") {
		if cm.Name == "istio" && cm.Namespace == "istio-system" {
			raw := cm.Str("data.mesh")
			for _, l := range strings.Split(raw, "\n") {
				l = strings.TrimSpace(l)
				if v, ok := strings.CutPrefix(l, "trustDomain:"); ok {
					o.td = strings.TrimSpace(v)
				}
				if v, ok := strings.CutPrefix(l, "trustDomainAliases:"); ok {
					for _, a := range strings.Split(strings.Trim(strings.TrimSpace(v), "[]"), ",") {
						o.alias = append(o.alias, strings.TrimSpace(a))
					}
				}
			}
		}
	}
	o.policy = m.KindAPI("AuthorizationPolicy", "security.istio.io")
	return o
}

func istioStringMatch(pattern, v string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(v, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(v, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == v
}

func anyMatch(patterns []string, v string) bool {
	for _, p := range patterns {
		if istioStringMatch(p, v) {
			return true
		}
	}
	return false
}

func (o *istioOracle) principal(r probeReq) string { return o.td + "/ns/" + r.ns + "/sa/" + r.sa }

// principalMatch: principals of an alias trust domain name the same
// workloads.
func (o *istioOracle) principalMatch(patterns []string, r probeReq) bool {
	for _, p := range patterns {
		for _, a := range o.alias {
			if rest, ok := strings.CutPrefix(p, a+"/"); ok {
				p = o.td + "/" + rest
			}
		}
		if istioStringMatch(p, o.principal(r)) {
			return true
		}
	}
	return false
}

func (o *istioOracle) applies(p *scan.Object, w *scan.Workload) bool {
	if dry, _ := scan.Bool(p.Annotations["istio.io/dry-run"], ""); dry {
		return false
	}
	if p.Namespace != w.Object.Namespace && p.Namespace != "istio-system" {
		return false
	}
	return scan.MatchLabels(scan.StringMap(p.Body, "spec.selector.matchLabels"), w.PodLabels)
}

// matchRule: unmodeled fields count as matching when lenientMatch,
// as not matching otherwise.
func (o *istioOracle) matchRule(r any, q probeReq, lenientMatch bool) bool {
	if froms := scan.List(r, "from"); len(froms) > 0 {
		ok := false
		for _, f := range froms {
			s := scan.Map(f, "source")
			m := true
			for _, k := range []string{"ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "requestPrincipals", "notRequestPrincipals"} {
				if _, set := s[k]; set {
					m = m && lenientMatch
				}
			}
			if ps, set := s["principals"]; set {
				m = m && o.principalMatch(scan.Strings(ps, ""), q)
			}
			if ps, set := s["notPrincipals"]; set {
				m = m && !o.principalMatch(scan.Strings(ps, ""), q)
			}
			if ns := scan.Strings(s, "namespaces"); len(ns) > 0 {
				m = m && anyMatch(ns, q.ns)
			}
			if ns := scan.Strings(s, "notNamespaces"); len(ns) > 0 {
				m = m && !anyMatch(ns, q.ns)
			}
			ok = ok || m
		}
		if !ok {
			return false
		}
	}
	if tos := scan.List(r, "to"); len(tos) > 0 {
		ok := false
		for _, t := range tos {
			op := scan.Map(t, "operation")
			m := true
			for _, k := range []string{"hosts", "notHosts"} {
				if _, set := op[k]; set {
					m = m && lenientMatch
				}
			}
			if v := scan.Strings(op, "ports"); len(v) > 0 {
				m = m && anyMatch(v, strconv.Itoa(q.port))
			}
			if v := scan.Strings(op, "notPorts"); len(v) > 0 {
				m = m && !anyMatch(v, strconv.Itoa(q.port))
			}
			if v := scan.Strings(op, "methods"); len(v) > 0 {
				m = m && anyMatch(v, q.method)
			}
			if v := scan.Strings(op, "notMethods"); len(v) > 0 {
				m = m && !anyMatch(v, q.method)
			}
			if v := scan.Strings(op, "paths"); len(v) > 0 {
				m = m && anyMatch(v, q.path)
			}
			if v := scan.Strings(op, "notPaths"); len(v) > 0 {
				m = m && !anyMatch(v, q.path)
			}
			ok = ok || m
		}
		if !ok {
			return false
		}
	}
	for _, c := range scan.List(r, "when") {
		key := scan.Str(c, "key")
		var v string
		var have bool
		switch {
		case strings.HasPrefix(key, "request.headers["):
			v, have = q.headers[strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]"))]
		case key == "source.namespace":
			v, have = q.ns, true
		case key == "source.principal":
			v, have = o.principal(q), true
		case key == "destination.port":
			v, have = strconv.Itoa(q.port), true
		default:
			if !lenientMatch {
				return false
			}
			continue
		}
		if vals := scan.Strings(c, "values"); len(vals) > 0 && (!have || !anyMatch(vals, v)) {
			return false
		}
		if vals := scan.Strings(c, "notValues"); len(vals) > 0 && have && anyMatch(vals, v) {
			return false
		}
	}
	return true
}

func (o *istioOracle) allow(w *scan.Workload, q probeReq) bool {
	var allows []*scan.Object
	for _, p := range o.policy {
		if !o.applies(p, w) {
			continue
		}
		switch strings.ToUpper(p.Str("spec.action")) {
		case "DENY":
			for _, r := range p.List("spec.rules") {
				if o.matchRule(r, q, false) {
					return false
				}
			}
		case "", "ALLOW":
			allows = append(allows, p)
		}
	}
	if len(allows) == 0 {
		return true
	}
	for _, p := range allows {
		for _, r := range p.List("spec.rules") {
			if o.matchRule(r, q, true) {
				return true
			}
		}
	}
	return false
}

// probes are the requests tried: every caller, path, port and header value
// the input mentions, and some it does not.
func probes(objs []*scan.Object, port int) []probeReq {
	callers := map[[2]string]bool{{"import-probe", "intruder"}: true, {"default", "caller"}: true}
	paths := map[string]bool{"/": true, "/x": true, "/import-probe": true}
	ports := map[int]bool{port: true, port + 1: true}
	headers := []map[string]string{nil}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch t := v.(type) {
		case map[string]any:
			if k := scan.Str(t, "key"); strings.HasPrefix(k, "request.headers[") {
				h := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(k, "request.headers["), "]"))
				for _, val := range scan.Strings(t, "values") {
					headers = append(headers, map[string]string{h: strings.Trim(val, "*")})
				}
			}
			if n := scan.Str(t, "name"); n != "" && n != "*" && key == "sources" {
				callers[[2]string{"default", n}] = true
			}
			if n := scan.Str(t, "name"); n != "" && (key == "identityRefs" || key == "serviceAccounts" || key == "requiredAuthenticationRefs") {
				callers[[2]string{nonEmpty(scan.Str(t, "namespace"), "books"), n}] = true
				callers[[2]string{nonEmpty(scan.Str(t, "namespace"), "default"), n}] = true
			}
			if n := scan.Str(t, "name"); n != "" && key == "header" {
				headers = append(headers, map[string]string{strings.ToLower(n): scan.Str(t, "exact")})
			}
			for k, e := range t {
				walk(e, k)
			}
		case []any:
			for _, e := range t {
				walk(e, key)
			}
		case int64:
			if key == "port" {
				ports[int(t)], ports[int(t)+1] = true, true
			}
		case string:
			switch key {
			case "identities":
				if sa, rest, ok := strings.Cut(t, "."); ok {
					ns, _, _ := strings.Cut(rest, ".")
					callers[[2]string{ns, strings.Trim(sa, "*") + "x"}] = true
					callers[[2]string{ns, sa}] = true
				}
			case "principals", "notPrincipals":
				if i := strings.Index(t, "/ns/"); i >= 0 {
					if ns, sa, ok := strings.Cut(t[i+4:], "/sa/"); ok {
						callers[[2]string{ns, strings.Trim(sa, "*") + "x"}] = true
						callers[[2]string{ns, strings.Trim(sa, "*")}] = true
					}
				}
			case "namespaces", "notNamespaces", "namespace":
				callers[[2]string{strings.Trim(t, "*"), "caller"}] = true
			case "paths", "notPaths", "pathExact", "pathPrefix":
				s := strings.Trim(t, "*")
				paths[s], paths[s+"x"], paths["/x"+s] = true, true, true
			case "ports":
				if n, err := strconv.Atoi(t); err == nil {
					ports[n], ports[n+1] = true, true
				}
			}
		}
	}
	for _, o := range objs {
		walk(o.Body, "")
	}
	var out []probeReq
	var cs [][2]string
	for c := range callers {
		if config.ValidName(c[0]) == nil && config.ValidName(c[1]) == nil {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i][0]+"/"+cs[i][1] < cs[j][0]+"/"+cs[j][1] })
	for _, c := range cs {
		for _, m := range methods {
			for p := range paths {
				if !strings.HasPrefix(p, "/") || !normalized(p) {
					continue
				}
				for port := range ports {
					for _, h := range headers {
						out = append(out, probeReq{ns: c[0], sa: c[1], method: m, path: p, port: port, headers: h})
					}
				}
			}
		}
	}
	return out
}

func decide(t *testing.T, e *policy.Engine, td string, ns, svc string, q probeReq) bool {
	t.Helper()
	id, err := identity.ServiceID(spiffeid.RequireTrustDomainFromString(td), q.ns, q.sa)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range q.headers {
		h.Set(k, v)
	}
	d := e.Decide(&policy.Request{Source: id, Destination: policy.Destination{Service: svc, Namespace: ns, Port: q.port},
		HTTP: &policy.HTTPRequest{Method: q.method, Path: q.path, Headers: h}})
	return d.Allow && !d.WouldDeny
}

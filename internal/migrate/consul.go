package migrate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/scan"
)

const (
	apiConsul     = "consul.hashicorp.com"
	annConnect    = "consul.hashicorp.com/connect-inject"
	annConnectSvc = "consul.hashicorp.com/connect-service"
	// consulDefaultNS is the Consul namespace of names that give none (and
	// of every name in Consul CE).
	consulDefaultNS = "default"
)

// intention is one source of a ServiceIntentions entry.
type intention struct {
	obj        *scan.Object
	field      string
	name, ns   string // source; "*" for a wildcard
	action     string // allow, deny, or "" with permissions
	perms      []any
	precedence int
}

// level of a name pattern: 3 exact, 2 every service of a namespace, 1 all.
func level(name, ns string) int {
	switch {
	case name != "*":
		return 3
	case ns != "" && ns != "*":
		return 2
	}
	return 1
}

// covers reports whether every caller b matches is matched by a.
func (a *intention) covers(b *intention) bool {
	switch level(a.name, a.ns) {
	case 1:
		return true
	case 2:
		return b.ns == a.ns && level(b.name, b.ns) >= 2
	}
	return level(b.name, b.ns) == 3 && a.name == b.name && a.ns == b.ns
}

type consulService struct{ ns, name string }

// consul translates ServiceIntentions; it reports whether the input had any.
func (im *importer) consul() bool {
	entries := im.m.KindAPI("ServiceIntentions", apiConsul)
	if len(entries) == 0 {
		return false
	}
	im.consulDefaults()
	known := map[consulService]bool{}
	ports := map[consulService]int{}
	wild := []*scan.Object{}
	for _, o := range entries {
		d := consulService{ns: nsOr(o.Str("spec.destination.namespace"), consulDefaultNS), name: o.Str("spec.destination.name")}
		if d.name == "*" {
			wild = append(wild, o)
		} else if d.name != "" {
			known[d] = true
		}
		for _, s := range o.List("spec.sources") {
			if n := scan.Str(s, "name"); n != "" && n != "*" && scan.Str(s, "peer") == "" && scan.Str(s, "partition") == "" {
				known[consulService{ns: nsOr(scan.Str(s, "namespace"), d.ns), name: n}] = true
			}
		}
	}
	for _, w := range im.m.Workloads() {
		if on, _ := scan.Bool(w.PodAnnotations[annConnect], ""); !on {
			continue
		}
		name := w.PodAnnotations[annConnectSvc]
		port := workloadPort(w)
		for _, svc := range im.m.Services() {
			if svc.Object.Namespace == w.Object.Namespace && len(svc.Selector) > 0 && scan.MatchLabels(svc.Selector, w.PodLabels) {
				if name == "" {
					name = svc.Object.Name
				}
				if port == defaultPort && len(svc.Ports) > 0 {
					if n, err := strconv.Atoi(svc.Ports[0].TargetPort); err == nil {
						port = n
					}
				}
			}
		}
		if name == "" {
			name = w.Object.Name
		}
		k := consulService{ns: consulDefaultNS, name: name}
		known[k] = true
		ports[k] = port
	}
	svcs := make([]consulService, 0, len(known))
	for k := range known {
		svcs = append(svcs, k)
	}
	sort.Slice(svcs, func(i, j int) bool {
		if svcs[i].ns != svcs[j].ns {
			return svcs[i].ns < svcs[j].ns
		}
		return svcs[i].name < svcs[j].name
	})
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.ns + "/" + s.name
	}
	for _, o := range wild {
		im.note(Narrowed, o, "spec.destination.name", "destination * is every service, including services not in the input",
			"expanded to the services the input names ("+strings.Join(names, ", ")+"); any other service is denied until a policy allows it")
	}
	for _, d := range svcs {
		var ints []*intention
		for _, o := range entries {
			dn := o.Str("spec.destination.name")
			dns := o.Str("spec.destination.namespace")
			var dl int
			switch {
			case dn == d.name && nsOr(dns, consulDefaultNS) == d.ns:
				dl = 3
			case dn == "*" && dns != "" && dns != "*" && dns == d.ns:
				dl = 2
			case dn == "*" && (dns == "" || dns == "*"):
				dl = 1
			default:
				continue
			}
			for i, s := range o.List("spec.sources") {
				f := fmt.Sprintf("spec.sources.%d", i)
				if peer := scan.Str(s, "peer") + scan.Str(s, "partition") + scan.Str(s, "samenessGroup"); peer != "" {
					im.noteOnce(Narrowed, o, f, "a source in another partition, peer or sameness group cannot be translated",
						"dropped: meshward authorizes callers of its own trust domain only")
					continue
				}
				if sm, _ := s.(map[string]any); sm == nil || badMaps(sm, "permissions") != "" {
					im.noteOnce(Narrowed, o, f, "has the wrong shape (Consul would reject the entry)", "dropped: it allows nothing")
					continue
				}
				in := &intention{obj: o, field: f, name: scan.Str(s, "name"), ns: scan.Str(s, "namespace"),
					action: strings.ToLower(scan.Str(s, "action")), perms: scan.List(s, "permissions")}
				if in.ns == "" && in.name != "*" {
					in.ns = nsOr(dns, consulDefaultNS)
				}
				if in.name == "" {
					continue
				}
				in.precedence = (dl-1)*3 + level(in.name, in.ns)
				ints = append(ints, in)
			}
		}
		if len(ints) == 0 {
			continue
		}
		sort.SliceStable(ints, func(i, j int) bool { return ints[i].precedence > ints[j].precedence })
		t := im.target(ints[0].obj, d.ns, d.name)
		if t == nil {
			continue
		}
		if p, ok := ports[d]; ok {
			t.port = p
		}
		im.consulTarget(t, ints)
	}
	return true
}

func nsOr(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

// consulTarget writes the rules of one destination: each intention, in
// precedence order, excludes the callers a more precise one decides.
func (im *importer) consulTarget(t *target, ints []*intention) {
	for i, in := range ints {
		t.addOrigin(in.obj)
		dead := false
		var exIDs, exNS []string
		for _, h := range ints[:i] {
			if h.covers(in) {
				dead = true
				break
			}
			if !in.covers(h) {
				continue
			}
			if level(h.name, h.ns) == 3 {
				exIDs = append(exIDs, im.probeID(h.ns, h.name))
			} else {
				exNS = append(exNS, h.ns)
			}
		}
		if dead {
			im.note(Info, in.obj, in.field, "a more precise intention decides every caller of this source", "it never applies here: nothing translated for "+t.name)
			continue
		}
		var when, except []string
		if len(exIDs) > 0 {
			when = append(when, not(istioMatch("source.identity", exIDs)))
			except = append(except, exIDs...)
		}
		if len(exNS) > 0 {
			when = append(when, not(istioMatch("source.namespace", exNS)))
		}
		src, base, ok := im.consulSource(in, t.namespace)
		if !ok {
			im.noteOnce(Narrowed, in.obj, in.field, fmt.Sprintf("source %s/%s is not a valid meshward service name", in.ns, in.name),
				"dropped: it gets no allow")
			continue
		}
		if len(in.perms) == 0 {
			if in.action == "allow" {
				t.addRule(&rule{name: base, from: []source{src}, when: when, except: except,
					origin: fmt.Sprintf("%s %s", in.obj.Ref(), in.field)})
			}
			continue
		}
		var denied []string
		for k, p := range in.perms {
			pf := fmt.Sprintf("%s.permissions.%d", in.field, k)
			act := strings.ToLower(scan.Str(p, "action"))
			op, conds, ok := im.consulHTTP(in.obj, pf, scan.Map(p, "http"), act == "deny")
			if act == "deny" {
				denied = append(denied, l7(and(append(opConds(op), conds...))))
				continue
			}
			if !ok || act != "allow" {
				continue
			}
			w := append(append([]string{}, when...), conds...)
			if len(denied) > 0 {
				w = append(w, not(or(denied)))
			}
			if len(op.Methods)+len(op.Paths) == 0 {
				w = append(w, `request.method != ""`)
			}
			var to []operation
			if len(op.Methods)+len(op.Paths) > 0 {
				to = []operation{op}
			}
			t.addRule(&rule{name: fmt.Sprintf("%s-p%d", base, k), from: []source{src}, to: to, when: w, except: except,
				origin: fmt.Sprintf("%s %s", in.obj.Ref(), pf)})
		}
		im.noteOnce(Info, in.obj, in.field, "L7 permissions: a request no permission matches falls to Consul's default intention policy",
			"meshward denies it (narrower when that default is allow)")
	}
}

// consulSource is the meshward source of an intention and a base name for
// its rules; ok is false when the names are not meshward names.
func (im *importer) consulSource(in *intention, ns string) (source, string, bool) {
	switch level(in.name, in.ns) {
	case 1:
		return source{Namespace: "*"}, "intention-any", true
	case 2:
		return source{Namespace: in.ns}, "intention-ns-" + in.ns, config.ValidName(in.ns) == nil
	}
	id := im.probeID(in.ns, in.name)
	if in.ns == ns && id != "" && config.ValidName(in.name) == nil {
		return source{Service: in.name}, "intention-" + in.name, true
	}
	return source{Identity: id}, "intention-" + in.ns + "-" + in.name, id != ""
}

// opConds is op as a CEL predicate (for a deny permission).
func opConds(op operation) []string {
	var c []string
	if len(op.Methods) > 0 {
		c = append(c, "request.method in "+list(op.Methods))
	}
	var ps []string
	for _, p := range op.Paths {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			ps = append(ps, "request.path.startsWith("+q(pre)+")")
		} else {
			ps = append(ps, "request.path == "+q(p))
		}
	}
	if len(ps) > 0 {
		c = append(c, or(ps))
	}
	return c
}

// consulHTTP translates a permission's http match. For a deny, the
// operation is exact (prefixes not narrowed) and what cannot be read
// counts as true.
func (im *importer) consulHTTP(o *scan.Object, f string, h map[string]any, deny bool) (operation, []string, bool) {
	var op operation
	var conds []string
	if ms := scan.Strings(h, "methods"); len(ms) > 0 {
		for _, m := range ms {
			if validMethod(m) {
				op.Methods = append(op.Methods, m)
			}
		}
		if len(op.Methods) == 0 && !deny {
			im.note(Narrowed, o, f+".http.methods", "no method meshward policies name", "the permission is dropped")
			return op, nil, false
		}
	}
	switch {
	case scan.Str(h, "pathExact") != "":
		p := scan.Str(h, "pathExact")
		if deny {
			conds = append(conds, "request.path == "+q(p))
		} else if normalized(p) {
			op.Paths = []string{p}
		} else {
			im.note(Narrowed, o, f+".http.pathExact", fmt.Sprintf("path %q is not normalized", p), "the permission is dropped")
			return op, nil, false
		}
	case scan.Str(h, "pathPrefix") != "":
		p := scan.Str(h, "pathPrefix")
		switch {
		case deny:
			conds = append(conds, "request.path.startsWith("+q(p)+")")
		case p == "/":
		case strings.HasSuffix(p, "/") && normalized(strings.TrimSuffix(p, "/")):
			op.Paths = []string{p + "*"}
		case normalized(p):
			op.Paths = []string{p, p + "/*"}
			im.note(Narrowed, o, f+".http.pathPrefix", fmt.Sprintf("prefix %q also matches %sx...", p, p), fmt.Sprintf("written as %s and %s/*", p, p))
		default:
			im.note(Narrowed, o, f+".http.pathPrefix", fmt.Sprintf("prefix %q is not a normalized path", p), "the permission is dropped")
			return op, nil, false
		}
	case scan.Str(h, "pathRegex") != "":
		conds = append(conds, "request.path.matches("+q("^(?:"+scan.Str(h, "pathRegex")+")$")+")")
		im.note(Info, o, f+".http.pathRegex", "regex path", "translated as a `when` condition request.path.matches(...) on the normalized path")
	}
	for i, hd := range scan.List(h, "header") {
		name := strings.ToLower(scan.Str(hd, "name"))
		v := "request.headers[" + q(name) + "]"
		var c string
		switch {
		case scan.Str(hd, "exact") != "":
			c = v + " == " + q(scan.Str(hd, "exact"))
		case scan.Str(hd, "prefix") != "":
			c = v + ".startsWith(" + q(scan.Str(hd, "prefix")) + ")"
		case scan.Str(hd, "suffix") != "":
			c = v + ".endsWith(" + q(scan.Str(hd, "suffix")) + ")"
		case scan.Str(hd, "regex") != "":
			c = v + ".matches(" + q("^(?:"+scan.Str(hd, "regex")+")$") + ")"
		default:
			c = "true" // present
		}
		c = and([]string{q(name) + " in request.headers", c})
		if inv, _ := scan.Bool(hd, "invert"); inv {
			c = not(c)
		}
		_ = i
		conds = append(conds, c)
	}
	return op, conds, true
}

// consulDefaults reports what the agent configuration says about calls no
// intention matches, and permissive mTLS.
func (im *importer) consulDefaults() {
	agents := im.m.Kind("ConsulAgentConfig")
	for _, o := range agents {
		dp := strings.ToLower(o.Str("acl.default_policy"))
		if dp == "" {
			dp = strings.ToLower(o.Str("acl_default_policy"))
		}
		enabled, _ := scan.Bool(o.Body, "acl.enabled")
		if dp == "allow" || !enabled || dp == "" {
			im.note(Narrowed, o, "acl", "Consul allows calls no intention matches (ACL default policy allow, or ACLs off)",
				"meshward denies them: only what an intention allowed is allowed")
		}
	}
	if len(agents) == 0 {
		im.note(Info, nil, "", "the input has no Consul agent configuration: its default intention policy is unknown",
			"meshward denies every call no intention allowed")
	}
	for _, kind := range []string{"ProxyDefaults", "ServiceDefaults"} {
		for _, o := range im.m.KindAPI(kind, apiConsul) {
			if strings.EqualFold(o.Str("spec.mutualTLSMode"), "permissive") {
				im.note(Narrowed, o, "spec.mutualTLSMode", "mutualTLSMode permissive: plaintext callers are accepted",
					"MeshConfig mtls: strict: meshward refuses plaintext callers")
			}
		}
	}
}

package migrate

import (
	"regexp"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

// consulOracle decides requests with Consul's intention precedence.
type consulOracle struct {
	entries      []*scan.Object
	defaultAllow bool
}

func newConsulOracle(m *scan.Model) *consulOracle {
	o := &consulOracle{entries: m.KindAPI("ServiceIntentions", "consul.hashicorp.com"), defaultAllow: true}
	for _, a := range m.Kind("ConsulAgentConfig") {
		on, _ := scan.Bool(a.Body, "acl.enabled")
		o.defaultAllow = !on || strings.ToLower(a.Str("acl.default_policy")) != "deny"
	}
	return o
}

func (o *consulOracle) allow(dest string, q probeReq) bool {
	best, bestPrec := any(nil), 0
	for _, e := range o.entries {
		dn, dns := e.Str("spec.destination.name"), e.Str("spec.destination.namespace")
		if dns == "" {
			dns = "default"
		}
		dl := 0
		switch {
		case dn == dest && dns == "default":
			dl = 3
		case dn == "*":
			dl = 1
		default:
			continue
		}
		for _, s := range e.List("spec.sources") {
			if scan.Str(s, "peer")+scan.Str(s, "partition")+scan.Str(s, "samenessGroup") != "" {
				continue
			}
			name, ns := scan.Str(s, "name"), scan.Str(s, "namespace")
			sl := 0
			switch {
			case name == "*" && (ns == "" || ns == "*"):
				sl = 1
			case name == "*" && ns == q.ns:
				sl = 2
			case name == q.sa && (ns == q.ns || ns == "" && q.ns == dns):
				sl = 3
			default:
				continue
			}
			if p := (dl-1)*3 + sl; p > bestPrec {
				best, bestPrec = s, p
			}
		}
	}
	if best == nil {
		return o.defaultAllow
	}
	perms := scan.List(best, "permissions")
	if len(perms) == 0 {
		return strings.ToLower(scan.Str(best, "action")) == "allow"
	}
	for _, p := range perms {
		h := scan.Map(p, "http")
		m := true
		if ms := scan.Strings(h, "methods"); len(ms) > 0 {
			m = m && contains(ms, q.method)
		}
		if v := scan.Str(h, "pathExact"); v != "" {
			m = m && q.path == v
		}
		if v := scan.Str(h, "pathPrefix"); v != "" {
			m = m && strings.HasPrefix(q.path, v)
		}
		if v := scan.Str(h, "pathRegex"); v != "" {
			ok, _ := regexp.MatchString("^(?:"+v+")$", q.path)
			m = m && ok
		}
		for _, hd := range scan.List(h, "header") {
			v, have := q.headers[strings.ToLower(scan.Str(hd, "name"))]
			hm := have
			if x := scan.Str(hd, "exact"); x != "" {
				hm = have && v == x
			}
			if inv, _ := scan.Bool(hd, "invert"); inv {
				hm = !hm
			}
			m = m && hm
		}
		if m {
			return strings.ToLower(scan.Str(p, "action")) == "allow"
		}
	}
	return o.defaultAllow
}

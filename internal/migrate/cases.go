package migrate

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/policy"
)

// Probe names: callers no source config names.
const (
	probeNamespace = "import-probe"
	probeCaller    = "caller"
	probeIntruder  = "intruder"
)

// cases builds, per rule, a request the rule allows and a nearby one
// (another caller, method, path or port) that is denied; per DENY sample,
// a case that it stays denied. Each case is kept only when the compiled
// engine agrees, so the tests pass by construction; a rule for which no
// candidate works is reported.
func (im *importer) cases(e *policy.Engine, t *target) []testCase {
	var out []testCase
	names := map[string]bool{}
	seen := map[string]bool{}
	add := func(c testCase) {
		key := fmt.Sprintf("%s %d %v %s", c.From, c.Port, *c.Request, c.Expect)
		if seen[key] {
			return
		}
		seen[key] = true
		base := c.Name
		for i := 2; names[c.Name]; i++ {
			c.Name = fmt.Sprintf("%s (%d)", base, i)
		}
		names[c.Name] = true
		out = append(out, c)
	}
	for _, r := range t.rules {
		allowed, ok := im.firstAllowed(e, t, r)
		if !ok {
			im.notes = append(im.notes, Note{Severity: Info, Object: "AccessPolicy/" + t.namespace + "/" + t.name, File: fileName(t),
				Message: "no generated request is allowed by rule " + r.name, Instead: "no test case for it: write one"})
			continue
		}
		add(allowed)
		if denied, ok := im.firstDenied(e, t, r, allowed); ok {
			add(denied)
		}
	}
	for _, s := range t.denySamples {
		c := testCase{From: s.from, To: t.name, Port: s.port, Expect: policy.ActionDeny,
			Request: &testReq{Method: s.method, Path: s.path}}
		if c.From == "" {
			c.From = im.probeID(probeNamespace, probeCaller)
		}
		if c.Port == 0 {
			c.Port = t.port
		}
		if c.Request.Method == "" {
			c.Request.Method = http.MethodGet
		}
		if c.Request.Path == "" {
			c.Request.Path = "/"
		}
		c.Name = fmt.Sprintf("source DENY: %s %s %s is denied", short(c.From), c.Request.Method, c.Request.Path)
		if !im.decides(e, t, c) {
			continue
		}
		add(c)
	}
	if len(t.rules) == 0 {
		c := testCase{Name: "nobody may call it", From: im.probeID(probeNamespace, probeCaller), To: t.name, Port: t.port,
			Request: &testReq{Method: http.MethodGet, Path: "/"}, Expect: policy.ActionDeny}
		if im.decides(e, t, c) {
			add(c)
		}
	}
	return out
}

func short(from string) string {
	if ns, sa, ok := identity.ParseServiceIDString(from); ok {
		return ns + "/" + sa
	}
	return from
}

// probeID is the identity of service sa of namespace ns.
func (im *importer) probeID(ns, sa string) string {
	id, err := identity.ServiceID(im.tdID, ns, sa)
	if err != nil {
		return ""
	}
	return id.String()
}

// callers are candidate callers matching r.
func (im *importer) callers(r *rule) []string {
	var out []string
	for _, s := range r.from {
		switch {
		case s.Service != "":
			out = append(out, s.Service)
		case s.Identity != "":
			out = append(out, s.Identity)
		case s.Namespace == "*":
			out = append(out, im.probeID(probeNamespace, probeCaller))
		default:
			out = append(out, im.probeID(s.Namespace, probeCaller))
		}
	}
	return out
}

// requests are candidate requests matching r's operations.
func requests(t *target, r *rule) []*testCase {
	ops := r.to
	if len(ops) == 0 {
		ops = []operation{{}}
	}
	var out []*testCase
	for _, op := range ops {
		ports := []int{t.port, defaultPort, 9999}
		if len(op.Ports) > 0 {
			ports = op.Ports[:1]
		}
		for _, port := range ports {
			ms := op.Methods
			if len(ms) == 0 {
				ms = []string{http.MethodGet, http.MethodPost}
			}
			ps := []string{}
			for _, p := range op.Paths {
				ps = append(ps, concretePath(p))
			}
			if len(ps) == 0 {
				ps = []string{"/", "/" + probeNamespace}
				if r.hint.path != "" {
					ps = append([]string{r.hint.path}, ps...)
				}
			}
			hs := op.Headers
			if len(r.hint.header) > 0 {
				hs = map[string]string{}
				for k, v := range r.hint.header {
					hs[k] = v
				}
				for k, v := range op.Headers {
					hs[k] = v
				}
			}
			for _, m := range ms {
				for _, p := range ps {
					out = append(out, &testCase{Port: port, Request: &testReq{Method: m, Path: p, Headers: hs}})
				}
			}
		}
	}
	return out
}

func (im *importer) firstAllowed(e *policy.Engine, t *target, r *rule) (testCase, bool) {
	for _, from := range im.callers(r) {
		for _, req := range requests(t, r) {
			c := *req
			c.From, c.To, c.Expect, c.Rule = from, t.name, policy.ActionAllow, r.name
			c.Name = fmt.Sprintf("%s: %s %s %s is allowed", r.name, short(from), c.Request.Method, c.Request.Path)
			if im.decides(e, t, c) {
				return c, true
			}
		}
	}
	return testCase{}, false
}

// firstDenied varies the allowed case: another caller, a caller the rule
// excludes, another method, path or port.
func (im *importer) firstDenied(e *policy.Engine, t *target, r *rule, a testCase) (testCase, bool) {
	type variant struct {
		what string
		c    testCase
	}
	var vs []variant
	with := func(f func(*testCase)) testCase {
		c := a
		req := *a.Request
		c.Request, c.Rule, c.Expect = &req, "", policy.ActionDeny
		f(&c)
		return c
	}
	intruder := im.probeID(probeNamespace, probeIntruder)
	vs = append(vs, variant{"another caller", with(func(c *testCase) { c.From = intruder })})
	for _, x := range r.except {
		x := x
		vs = append(vs, variant{"an excluded caller", with(func(c *testCase) { c.From = x })})
	}
	for _, m := range methods {
		if m != a.Request.Method {
			m := m
			vs = append(vs, variant{"another method", with(func(c *testCase) { c.Request.Method = m })})
		}
	}
	vs = append(vs, variant{"another path", with(func(c *testCase) { c.Request.Path = "/" + probeNamespace + "-other" })})
	for _, s := range t.denySamples {
		s := s
		vs = append(vs, variant{"a request the source denies", with(func(c *testCase) {
			if s.method != "" {
				c.Request.Method = s.method
			}
			if s.path != "" {
				c.Request.Path = s.path
			}
		})})
	}
	if a.Port < 65535 {
		vs = append(vs, variant{"another port", with(func(c *testCase) { c.Port = a.Port + 1 })})
	}
	for _, v := range vs {
		c := v.c
		c.Name = fmt.Sprintf("%s: %s (%s %s %s:%d) is denied", r.name, v.what, short(c.From), c.Request.Method, c.Request.Path, c.Port)
		if im.decides(e, t, c) {
			return c, true
		}
	}
	return testCase{}, false
}

// decides reports whether e decides c as expected (and by the expected
// rule), as policytest would.
func (im *importer) decides(e *policy.Engine, t *target, c testCase) bool {
	var src spiffeid.ID
	var err error
	if strings.HasPrefix(c.From, "spiffe://") {
		src, err = spiffeid.FromString(c.From)
	} else {
		src, err = identity.ServiceID(im.tdID, t.namespace, c.From)
	}
	if err != nil {
		return false
	}
	req := &policy.Request{Source: src, Destination: policy.Destination{Service: t.name, Namespace: t.namespace, Port: c.Port}}
	if c.Request != nil {
		p, err := e.NormalizePath(c.Request.Path)
		if err != nil || p != c.Request.Path {
			return false
		}
		h := http.Header{}
		for k, v := range c.Request.Headers {
			h.Set(k, v)
		}
		req.HTTP = &policy.HTTPRequest{Method: c.Request.Method, Path: p, Headers: h}
	}
	d := e.Decide(req)
	got := policy.ActionDeny
	if d.Allow && !d.WouldDeny {
		got = policy.ActionAllow
	}
	return got == c.Expect && (c.Rule == "" || c.Rule == d.Rule)
}

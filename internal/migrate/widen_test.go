package migrate

import (
	"strings"
	"testing"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/scan"
)

// TestImportNeverWider checks every import against the source mesh's
// semantics: whatever the import allows, the source allowed.
func TestImportNeverWider(t *testing.T) {
	t.Parallel()
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs := load(t, tc.paths)
			td := tc.td
			if td == "" {
				td = DefaultTrustDomain
			}
			res, err := Import(objs, Options{TrustDomain: td})
			if err != nil {
				t.Fatal(err)
			}
			e, err := policy.Compile(toPolicyFiles(res.Files), policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := scan.NewModel(objs, timeZero)
			allowed, wider := 0, 0
			check := func(ns, svc string, port int, oracle func(probeReq) bool) {
				for _, q := range probes(objs, port) {
					if !decide(t, e, td, ns, svc, q) {
						continue
					}
					allowed++
					if !oracle(q) {
						if wider++; wider <= 10 {
							t.Errorf("import allows %s/%s -> %s/%s:%d %s %s %v; the source denies it", q.ns, q.sa, ns, svc, q.port, q.method, q.path, q.headers)
						}
					}
				}
			}
			if len(m.KindAPI("AuthorizationPolicy", "security.istio.io")) > 0 {
				io := newIstioOracle(m)
				for _, w := range m.Workloads() {
					check(w.Object.Namespace, w.Object.Name, workloadPort(w), func(q probeReq) bool { return io.allow(w, q) })
				}
			}
			if len(m.KindAPI("Server", "policy.linkerd.io")) > 0 {
				lo := &linkerdOracle{m: m}
				for _, w := range m.Workloads() {
					check(w.Object.Namespace, w.Object.Name, workloadPort(w), func(q probeReq) bool { return lo.allow(w, q) })
				}
			}
			if len(m.KindAPI("ServiceIntentions", "consul.hashicorp.com")) > 0 {
				co := newConsulOracle(m)
				for _, p := range e.Policies() {
					check(p.Namespace, p.Spec.Target, defaultPort, func(q probeReq) bool { return co.allow(p.Spec.Target, q) })
				}
			}
			if allowed == 0 && !tc.none {
				t.Errorf("the import allows none of the probes: the check proves nothing")
			}
			t.Logf("%d probes allowed by the import, %d of them wider than the source", allowed, wider)
		})
	}
}

// TestImportPrincipalsStayExclusive: for each source ALLOW whose every
// rule names principals, a caller it does not name is denied.
func TestImportPrincipalsStayExclusive(t *testing.T) {
	t.Parallel()
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs := load(t, tc.paths)
			td := tc.td
			if td == "" {
				td = DefaultTrustDomain
			}
			res, err := Import(objs, Options{TrustDomain: td})
			if err != nil {
				t.Fatal(err)
			}
			e, err := policy.Compile(toPolicyFiles(res.Files), policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := scan.NewModel(objs, timeZero)
			io := newIstioOracle(m)
			for _, w := range m.Workloads() {
				exclusive, n := true, 0
				for _, p := range io.policy {
					if !io.applies(p, w) || !strings.EqualFold(nonEmpty(p.Str("spec.action"), "ALLOW"), "ALLOW") {
						continue
					}
					n++
					for _, r := range p.List("spec.rules") {
						froms := scan.List(r, "from")
						exclusive = exclusive && len(froms) > 0
						for _, f := range froms {
							ps := scan.Strings(f, "source.principals")
							exclusive = exclusive && len(ps) > 0 && !hasWildcard(ps, false) && !contains(ps, "*")
						}
					}
				}
				if n == 0 || !exclusive {
					continue
				}
				for _, q := range probes(objs, workloadPort(w)) {
					if q.sa != "intruder" {
						continue
					}
					if decide(t, e, td, w.Object.Namespace, w.Object.Name, q) {
						t.Errorf("%s: a caller no principal names is allowed: %+v", w.Object.Name, q)
					}
				}
			}
		})
	}
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

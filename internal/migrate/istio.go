package migrate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/scan"
	istiostate "meshward.dev/meshward/internal/scan/rules/istio"
)

const (
	apiIstioSecurity = "security.istio.io"
	annDryRun        = "istio.io/dry-run"
)

// istioPolicy is one AuthorizationPolicy as the import reads it.
type istioPolicy struct {
	obj    *scan.Object
	action string
	rules  []any
}

// istio translates AuthorizationPolicies and PeerAuthentications; it
// reports whether the input had any.
func (im *importer) istio() bool {
	aps := im.m.KindAPI("AuthorizationPolicy", apiIstioSecurity)
	pas := im.m.KindAPI("PeerAuthentication", apiIstioSecurity)
	if len(aps) == 0 && len(pas) == 0 {
		return false
	}
	tds := istiostate.TrustDomain(im.m)
	pm := &principals{td: im.td, tdID: im.tdID, istio: tds}
	var enforced []*istioPolicy
	for _, o := range aps {
		action := strings.ToUpper(o.Str("spec.action"))
		if action == "" {
			action = "ALLOW"
		}
		if dry, _ := scan.Bool(o.Annotations[annDryRun], ""); dry {
			im.note(Info, o, "metadata.annotations", "dry-run policy: Istio enforces nothing of it", "not translated")
			continue
		}
		switch action {
		case "ALLOW", "DENY", "CUSTOM":
		case "AUDIT":
			im.note(Info, o, "spec.action", "AUDIT policy: Istio only logs", "not translated")
			continue
		default:
			im.note(Info, o, "spec.action", fmt.Sprintf("unknown action %q: Istio rejects the policy", action), "not translated")
			continue
		}
		enforced = append(enforced, &istioPolicy{obj: o, action: action, rules: o.List("spec.rules")})
	}
	used := map[*scan.Object]bool{}
	plaintext := map[string]bool{}
	for _, w := range im.m.Workloads() {
		if in, known := istiostate.InMesh(im.m, w); !in && known {
			im.note(Narrowed, w.Object, "", "not in the Istio mesh: no sidecar, Istio enforced nothing here",
				"no AccessPolicy written: meshward denies every call to it until one allows it")
			continue
		}
		var allows, denies []*istioPolicy
		for _, p := range enforced {
			if !istiostate.Applies(im.m, p.obj, w) {
				continue
			}
			used[p.obj] = true
			if p.action == "ALLOW" {
				allows = append(allows, p)
			} else {
				denies = append(denies, p)
			}
		}
		im.istioMTLS(w, plaintext)
		if w.ServiceAccount != w.Object.Name {
			im.note(Info, w.Object, "", fmt.Sprintf("runs as service account %s: Istio principals name it .../sa/%s", w.ServiceAccount, w.ServiceAccount),
				fmt.Sprintf("its meshward service is %s (identity .../ns/%s/sa/%s): rules that named .../sa/%s as a caller now name a service %s",
					w.Object.Name, w.Object.Namespace, w.Object.Name, w.ServiceAccount, w.ServiceAccount))
		}
		t := im.target(w.Object, w.Object.Namespace, w.Object.Name)
		if t == nil {
			continue
		}
		t.port = workloadPort(w)
		im.istioWorkload(t, w, allows, denies, pm)
	}
	for _, p := range enforced {
		if used[p.obj] {
			continue
		}
		if len(im.m.WorkloadsIn(p.obj.Namespace)) == 0 && p.obj.Namespace != istiostate.RootNamespace(im.m) {
			im.note(Narrowed, p.obj, "spec.selector", "the workloads of namespace "+p.obj.Namespace+" are not in the input",
				"not translated: add their manifests to the import so the policy has targets")
		} else {
			im.note(Info, p.obj, "spec.selector", "selects no workload in the input", "not translated: it applies to nothing")
		}
	}
	if len(pas) > 0 && len(im.m.Workloads()) == 0 {
		for _, o := range pas {
			if mode := strings.ToUpper(o.Str("spec.mtls.mode")); mode == "PERMISSIVE" || mode == "DISABLE" {
				im.note(Narrowed, o, "spec.mtls.mode", "mTLS "+mode+": plaintext callers are accepted",
					"MeshConfig mtls: strict: meshward refuses plaintext callers")
			}
		}
	}
	return true
}

// istioMTLS reports, once per deciding object, where plaintext was
// accepted.
func (im *importer) istioMTLS(w *scan.Workload, seen map[string]bool) {
	mode, by, ports := istiostate.PeerMode(im.m, w)
	report := func(mode, where string) {
		if mode != "PERMISSIVE" && mode != "DISABLE" {
			return
		}
		o, field, what := by, "spec.mtls.mode", "mTLS "+mode+where
		if by == nil {
			o, field, what = w.Object, "", "no PeerAuthentication: Istio's default PERMISSIVE"
		}
		key := o.Ref().String() + what
		if seen[key] {
			return
		}
		seen[key] = true
		im.note(Narrowed, o, field, what+": plaintext callers are accepted",
			"MeshConfig mtls: strict: meshward refuses plaintext callers")
	}
	report(mode, "")
	keys := make([]int, 0, len(ports))
	for p := range ports {
		keys = append(keys, p)
	}
	sort.Ints(keys)
	for _, p := range keys {
		report(ports[p], fmt.Sprintf(" on port %d", p))
	}
}

// istioWorkload gives t the rules of the ALLOW policies that apply to w,
// each narrowed by the DENY (and CUSTOM) policies that apply.
func (im *importer) istioWorkload(t *target, w *scan.Workload, allows, denies []*istioPolicy, pm *principals) {
	var carve []string
	denyAll := false
	for _, p := range denies {
		t.addOrigin(p.obj)
		if p.action == "CUSTOM" {
			provider := p.obj.Str("spec.provider.name")
			im.noteOnce(Narrowed, p.obj, "spec.action", fmt.Sprintf("CUSTOM action (external authorizer %q) cannot be translated", provider),
				"its rules are treated as DENY: requests they match get no allow (the authorizer could deny any of them)")
		}
		if len(p.rules) == 0 {
			if p.action == "DENY" {
				im.noteOnce(Info, p.obj, "spec", "DENY without rules matches nothing", "nothing to translate")
			}
			continue
		}
		for i, r := range p.rules {
			pred, samp := im.istioDenyRule(p, i, r, pm)
			if pred == "true" {
				denyAll = true
			}
			if pred != "false" {
				carve = append(carve, pred)
			}
			if samp != nil {
				t.denySamples = append(t.denySamples, *samp)
			}
		}
	}
	var rules []*rule
	if len(allows) == 0 {
		rules = append(rules, &rule{name: "istio-implicit-allow", from: []source{{Namespace: "*"}},
			origin: "no ALLOW policy: Istio allows every caller"})
		im.note(Info, w.Object, "", "no ALLOW AuthorizationPolicy selects it: Istio allows every caller",
			`kept as rule istio-implicit-allow {namespace: "*"} (less any DENY): narrow it`)
	}
	for _, p := range allows {
		t.addOrigin(p.obj)
		rules = append(rules, im.istioAllow(p, t.namespace, pm)...)
	}
	for _, r := range rules {
		if denyAll {
			im.noteOnce(Narrowed, w.Object, "", "a DENY (or CUSTOM) rule that the import must read as matching every request applies",
				"its allow rules are dropped: nobody may call it")
			continue
		}
		if len(carve) > 0 {
			r.when = append(r.when, not(or(carve)))
		}
		t.addRule(r)
	}
}

func (im *importer) noteOnce(kind string, o *scan.Object, field, msg, instead string) {
	for _, n := range im.notes {
		if o != nil && n.Object == o.Ref().String() && n.Field == field && n.Message == msg {
			return
		}
	}
	im.note(kind, o, field, msg, instead)
}

func workloadPort(w *scan.Workload) int {
	for _, c := range w.Containers {
		for _, p := range c.Ports {
			if p > 0 && p < 65536 {
				return p
			}
		}
	}
	return defaultPort
}

// principals maps Istio principals ("<td>/ns/N/sa/S") to meshward SPIFFE
// IDs in td; istio are Istio's trust domain and its aliases.
type principals struct {
	td    string
	tdID  spiffeid.TrustDomain
	istio []string
}

// mapPattern maps one principal pattern to a pattern on SPIFFE IDs
// (exact, "prefix*", "*suffix" or "*"); ok is false for a principal of a
// foreign trust domain or a pattern the import cannot map.
func (pm *principals) mapPattern(p string) (string, bool) {
	switch {
	case p == "*":
		return "*", true
	case strings.HasPrefix(p, "*"):
		return p, true // a suffix: the trust domain is not in it
	}
	for _, td := range pm.istio {
		rest, ok := strings.CutPrefix(p, td+"/")
		if !ok {
			continue
		}
		if strings.Contains(rest, "*") {
			return "spiffe://" + pm.td + "/" + rest, true // a prefix pattern
		}
		if ns, sa, ok := strings.Cut(strings.TrimPrefix(rest, "ns/"), "/sa/"); ok && strings.HasPrefix(rest, "ns/") {
			if id, err := identity.ServiceID(pm.tdID, ns, sa); err == nil {
				return id.String(), true
			}
		}
		if id, err := spiffeid.FromString("spiffe://" + pm.td + "/" + rest); err == nil {
			return id.String(), true
		}
		return "", false
	}
	return "", false
}

// mapAll maps patterns, returning those it could not.
func (pm *principals) mapAll(ps []string) (mapped, dropped []string) {
	for _, p := range ps {
		if m, ok := pm.mapPattern(p); ok {
			mapped = append(mapped, m)
		} else {
			dropped = append(dropped, p)
		}
	}
	return mapped, dropped
}

package istio

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"meshward.dev/meshward/internal/scan"
)

const (
	defaultRoot        = "istio-system"
	annInject          = "sidecar.istio.io/inject"
	annDryRun          = "istio.io/dry-run"
	labelInjection     = "istio-injection"
	labelRev           = "istio.io/rev"
	labelDataplaneMode = "istio.io/dataplane-mode"
	labelUseWaypoint   = "istio.io/use-waypoint"
)

// tri is a three-valued answer: the input may not say.
type tri int

const (
	unknown tri = iota
	yes
	no
)

// state is Istio's effective configuration, computed once per model.
type state struct {
	m       *scan.Model
	present bool // the input has anything Istio
	root    string
	mesh    map[string]any // decoded mesh config ({} when absent)
	meshObj *scan.Object   // where the mesh config lives, nil when absent
	ns      map[string]tri // namespace in mesh (sidecar or ambient)
	pas     []*peerAuth
	aps     []*authzPolicy
	nsNames map[string]bool
	live    bool // objects came from a live cluster
	ambient map[string]bool
	apsByNS map[string][]*authzPolicy
	inMesh  map[*scan.Workload]tri
}

type peerAuth struct {
	obj      *scan.Object
	selector map[string]string // nil: namespace or mesh level
	mode     string            // "" when UNSET
	ports    map[int]string    // portLevelMtls
}

type authzPolicy struct {
	obj        *scan.Object
	selector   map[string]any // nil: namespace-wide (or mesh-wide in root)
	targetRefs []map[string]any
	action     string
	dryRun     bool
	rules      []any
	hasRules   bool
}

func (a *authzPolicy) enforced() bool {
	return !a.dryRun && (a.action == "ALLOW" || a.action == "DENY" || a.action == "CUSTOM")
}

func get(m *scan.Model) *state {
	return m.Memo("istio", func() any { return build(m) }).(*state)
}

func isIstioAPI(api string) bool {
	return strings.Contains(api, "istio.io/")
}

func build(m *scan.Model) *state {
	s := &state{m: m, root: defaultRoot, mesh: map[string]any{}, ns: map[string]tri{}, nsNames: map[string]bool{}, ambient: map[string]bool{},
		apsByNS: map[string][]*authzPolicy{}, inMesh: map[*scan.Workload]tri{}}
	for _, n := range m.NamespaceNames() {
		s.nsNames[n] = true
	}
	for _, o := range m.Objects {
		if strings.HasPrefix(o.File, "cluster:") {
			s.live = true // read from a cluster: its namespace list is complete
		}
		if isIstioAPI(o.APIVersion) {
			s.present = true
		}
	}
	s.loadMeshConfig()
	if r := scan.Str(s.mesh, "rootNamespace"); r != "" {
		s.root = r
	}
	for _, n := range m.NamespaceNames() {
		s.ns[n] = s.namespaceInMesh(n)
		if s.ns[n] == yes {
			s.present = true
		}
	}
	for _, o := range m.KindAPI("PeerAuthentication", "security.istio.io") {
		p := &peerAuth{obj: o, mode: strings.ToUpper(o.Str("spec.mtls.mode")), ports: map[int]string{}}
		if p.mode == "UNSET" {
			p.mode = ""
		}
		if sel := o.Map("spec.selector"); sel != nil {
			p.selector = scan.StringMap(sel, "matchLabels")
			if len(p.selector) == 0 {
				p.selector = nil // an empty selector is namespace-wide
			}
			for k, v := range scan.Map(o.Body, "spec.portLevelMtls") {
				port, err := strconv.Atoi(k)
				if err != nil {
					continue
				}
				mode := strings.ToUpper(scan.Str(v, "mode"))
				if mode == "UNSET" {
					mode = ""
				}
				p.ports[port] = mode
			}
		}
		s.pas = append(s.pas, p)
	}
	for _, o := range m.KindAPI("AuthorizationPolicy", "security.istio.io") {
		sel := o.Map("spec.selector")
		if len(scan.Map(sel, "matchLabels")) == 0 && len(scan.List(sel, "matchExpressions")) == 0 {
			sel = nil // an empty selector is namespace-wide
		}
		a := &authzPolicy{obj: o, selector: sel, action: strings.ToUpper(o.Str("spec.action")), rules: o.List("spec.rules")}
		if a.action == "" {
			a.action = "ALLOW"
		}
		_, a.hasRules = o.Map("spec")["rules"]
		a.dryRun, _ = scan.Bool(o.Annotations[annDryRun], "")
		for _, t := range o.List("spec.targetRefs") {
			if tm, ok := t.(map[string]any); ok {
				a.targetRefs = append(a.targetRefs, tm)
			}
		}
		if t := o.Map("spec.targetRef"); t != nil {
			a.targetRefs = append(a.targetRefs, t)
		}
		s.aps = append(s.aps, a)
		s.apsByNS[o.Namespace] = append(s.apsByNS[o.Namespace], a)
	}
	return s
}

// loadMeshConfig reads mesh config from ConfigMap <root>/istio (data.mesh)
// or an IstioOperator's spec.meshConfig.
func (s *state) loadMeshConfig() {
	for _, o := range s.m.Kind("ConfigMap") {
		revisioned := strings.HasPrefix(o.Name, "istio-") && o.Map("data")["mesh"] != nil
		if (o.Name != "istio" && !revisioned) || !strings.HasPrefix(o.Namespace, "istio") {
			continue
		}
		raw := o.Str("data.mesh")
		var mc map[string]any
		if err := yaml.Unmarshal([]byte(raw), &mc); err == nil {
			if mc == nil {
				mc = map[string]any{}
			}
			s.mesh, s.meshObj, s.present = mc, o, true
			return
		}
	}
	if ops := s.m.Kind("IstioOperator"); len(ops) > 0 {
		o := ops[0] // the first; several operators are not merged
		mc := o.Map("spec.meshConfig")
		if mc == nil {
			mc = map[string]any{}
		}
		s.mesh, s.meshObj, s.present = mc, o, true
	}
}

// namespaceInMesh: labelled for injection or ambient, or holding a workload
// that opted in.
func (s *state) namespaceInMesh(n string) tri {
	if o := s.m.Namespace(n); o != nil {
		switch {
		case o.Labels[labelInjection] == "disabled":
			return no
		case o.Labels[labelInjection] == "enabled", o.Labels[labelRev] != "":
			return yes
		case o.Labels[labelDataplaneMode] == "ambient":
			s.ambient[n] = true
			return yes
		}
	}
	for _, w := range s.m.WorkloadsIn(n) {
		if workloadOptsIn(w) {
			return yes
		}
	}
	if s.m.Namespace(n) != nil {
		return no
	}
	return unknown
}

func workloadOptsIn(w *scan.Workload) bool {
	return w.PodLabels[annInject] == "true" || w.PodLabels[labelRev] != "" || w.PodLabels[labelDataplaneMode] == "ambient"
}

func workloadOptsOut(w *scan.Workload) bool {
	return strings.EqualFold(w.PodAnnotations[annInject], "false") || strings.EqualFold(w.PodLabels[annInject], "false") ||
		w.PodLabels[labelDataplaneMode] == "none"
}

// namespaceInjectionOn: the namespace itself turns injection on (not just
// one workload).
func (s *state) namespaceInjectionOn(n string) bool {
	o := s.m.Namespace(n)
	if o == nil {
		return false
	}
	return o.Labels[labelInjection] == "enabled" || (o.Labels[labelRev] != "" && o.Labels[labelInjection] != "disabled") || o.Labels[labelDataplaneMode] == "ambient"
}

// workloadInMesh reports whether w runs with a proxy (or in ambient).
func (s *state) workloadInMesh(w *scan.Workload) tri {
	if v, ok := s.inMesh[w]; ok {
		return v
	}
	v := s.computeInMesh(w)
	s.inMesh[w] = v
	return v
}

func (s *state) computeInMesh(w *scan.Workload) tri {
	if workloadOptsOut(w) {
		return no
	}
	if workloadOptsIn(w) {
		if o := s.m.Namespace(w.Object.Namespace); o != nil && o.Labels[labelInjection] == "disabled" {
			return no
		}
		return yes
	}
	return s.ns[w.Object.Namespace]
}

// inScope: namespaces whose workloads the mesh config governs: in the
// mesh, or unknown but carrying Istio policy.
func (s *state) inScope(n string) bool {
	switch s.ns[n] {
	case yes:
		return true
	case unknown:
		return n != s.root
	}
	return false
}

// --- PeerAuthentication precedence ---------------------------------------

// chain returns the workload-level, namespace-level and mesh-level
// PeerAuthentications that apply to labels in namespace n. Istio picks the
// oldest when several match; the input order stands in for age.
func (s *state) chain(n string, labels map[string]string) (wl, ns, mesh *peerAuth) {
	for _, p := range s.pas {
		switch {
		case p.obj.Namespace == n && p.selector != nil && labels != nil && scan.MatchLabels(p.selector, labels) && len(p.selector) > 0:
			if wl == nil {
				wl = p
			}
		case p.obj.Namespace == n && p.selector == nil:
			if ns == nil {
				ns = p
			}
		}
		if p.obj.Namespace == s.root && p.selector == nil && mesh == nil {
			mesh = p
		}
	}
	return wl, ns, mesh
}

// resolve returns the effective mode and the PeerAuthentication that set
// it (nil: Istio's default, PERMISSIVE).
func resolve(chain ...*peerAuth) (string, *peerAuth) {
	for _, p := range chain {
		if p != nil && p.mode != "" {
			return p.mode, p
		}
	}
	return "PERMISSIVE", nil
}

// mtlsUse is where each PeerAuthentication (or its absence) takes effect.
type mtlsUse struct {
	permissive map[*peerAuth]bool
	disabled   map[*peerAuth]bool
	implicit   map[string]bool // namespace with no deciding policy
	plaintext  map[string]bool // "ns" or "ns/workload": accepts plaintext somewhere
	effective  map[*peerAuth]bool
}

func (s *state) mtls() *mtlsUse {
	return s.m.Memo("istio.mtls", func() any { return s.computeMTLS() }).(*mtlsUse)
}

func (s *state) computeMTLS() *mtlsUse {
	u := &mtlsUse{permissive: map[*peerAuth]bool{}, disabled: map[*peerAuth]bool{}, implicit: map[string]bool{}, plaintext: map[string]bool{}, effective: map[*peerAuth]bool{}}
	mark := func(n, key, mode string, p *peerAuth) {
		if p != nil {
			u.effective[p] = true
		}
		if mode != "PERMISSIVE" && mode != "DISABLE" {
			return
		}
		u.plaintext[key] = true
		u.plaintext[n] = u.plaintext[n] || key == n
		switch {
		case p == nil:
			u.implicit[n] = true
		case mode == "PERMISSIVE":
			u.permissive[p] = true
		default:
			u.disabled[p] = true
		}
	}
	scoped := 0
	for _, n := range s.m.NamespaceNames() {
		if !s.inScope(n) {
			continue
		}
		scoped++
		wls := s.m.WorkloadsIn(n)
		_, nsPA, meshPA := s.chain(n, nil)
		mode, p := resolve(nsPA, meshPA)
		if p == nil && nsPA != nil {
			p = nsPA // an UNSET namespace policy is the object to change
		}
		if len(wls) == 0 {
			mark(n, n, mode, p)
			continue
		}
		for _, w := range wls {
			if s.workloadInMesh(w) == no {
				continue
			}
			key := n + "/" + w.Object.Name
			wl, nsPA, meshPA := s.chain(n, w.PodLabels)
			mode, p := resolve(wl, nsPA, meshPA)
			if p == nil && nsPA != nil {
				p = nsPA
			}
			mark(n, key, mode, p)
			if wl != nil {
				u.effective[wl] = true
				for _, pm := range wl.ports {
					pmode := pm
					if pmode == "" {
						pmode = mode
					}
					if pmode == "PERMISSIVE" || pmode == "DISABLE" {
						mark(n, key, pmode, wl)
					}
				}
			}
		}
	}
	// Workload-level policies in namespaces whose workloads the input does
	// not show: nothing proves they select nothing, so they count.
	for _, p := range s.pas {
		n := p.obj.Namespace
		if p.selector == nil || len(s.m.WorkloadsIn(n)) > 0 || s.ns[n] == no {
			continue
		}
		_, nsPA, meshPA := s.chain(n, nil)
		mode, decider := resolve(p, nsPA, meshPA)
		if decider == p {
			mark(n, n+"/"+p.obj.Name, mode, p)
		} else {
			u.effective[p] = true
		}
		for _, pm := range p.ports {
			if pm == "" {
				pm = mode
			}
			mark(n, n+"/"+p.obj.Name, pm, p)
		}
	}
	if scoped == 0 {
		// Nothing in the input says which namespaces are meshed: the
		// mesh-wide and namespace policies govern whatever runs there.
		for _, p := range s.pas {
			if p.selector == nil {
				mark(p.obj.Namespace, p.obj.Namespace, p.mode, p)
			}
		}
	}
	return u
}

// workloadPlaintext reports whether a workload accepts plaintext on some
// port; w nil asks about a namespace's hypothetical workloads.
func (s *state) acceptsPlaintext(n string, w *scan.Workload) bool {
	labels := map[string]string(nil)
	if w != nil {
		labels = w.PodLabels
	}
	return s.labelsAcceptPlaintext(n, labels)
}

// labelsAcceptPlaintext reports whether pods with these labels in namespace
// n accept plaintext on some port; nil labels: a namespace's hypothetical
// workloads, governed by namespace and mesh policy only.
func (s *state) labelsAcceptPlaintext(n string, labels map[string]string) bool {
	if len(labels) == 0 {
		labels = nil
	}
	wl, nsPA, meshPA := s.chain(n, labels)
	mode, _ := resolve(wl, nsPA, meshPA)
	if mode == "PERMISSIVE" || mode == "DISABLE" {
		return true
	}
	if wl != nil {
		for _, pm := range wl.ports {
			if pm == "PERMISSIVE" || pm == "DISABLE" {
				return true
			}
		}
	}
	return false
}

// --- AuthorizationPolicy selection ---------------------------------------

// selects reports whether a applies to workload w.
func (s *state) selects(a *authzPolicy, w *scan.Workload) bool {
	n := w.Object.Namespace
	if len(a.targetRefs) > 0 {
		if a.obj.Namespace != n && a.obj.Namespace != s.root {
			return false
		}
		for _, t := range a.targetRefs {
			switch scan.Str(t, "kind") {
			case "Service":
				for _, svc := range s.m.Services() {
					if svc.Object.Namespace == n && svc.Object.Name == scan.Str(t, "name") && len(svc.Selector) > 0 && scan.MatchLabels(svc.Selector, w.PodLabels) {
						return true
					}
				}
			case "Gateway":
				return true // a waypoint serves the namespace
			case "GatewayClass":
				return true
			}
		}
		return false
	}
	if a.obj.Namespace != n && a.obj.Namespace != s.root {
		return false
	}
	if a.selector != nil && gatewayAPIPod(w) {
		return false // Istio ignores selectors on Gateway API gateways (MW-ISTIO-021)
	}
	return scan.MatchSelector(a.selector, w.PodLabels)
}

// namespaceWide reports whether a applies to every workload of namespace n.
func (s *state) namespaceWide(a *authzPolicy, n string) bool {
	return a.selector == nil && len(a.targetRefs) == 0 && (a.obj.Namespace == n || a.obj.Namespace == s.root)
}

func (s *state) inMeshConfigDefault(key, def string) string {
	if v := scan.Str(s.mesh, key); v != "" {
		return strings.ToUpper(v)
	}
	return def
}

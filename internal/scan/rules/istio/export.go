package istio

import "meshward.dev/meshward/internal/scan"

// The accessors below expose the effective-state analysis the rules share,
// read-only, to `meshward policy import` (package migrate), so that the
// import resolves selectors, scope and mTLS precedence exactly as the
// scanner does.

// RootNamespace is Istio's root namespace for m (istio-system unless the
// mesh config sets rootNamespace): its policies without a selector are
// mesh-wide.
func RootNamespace(m *scan.Model) string { return get(m).root }

// TrustDomain is the mesh config's trustDomain ("cluster.local" when
// unset) followed by its trustDomainAliases.
func TrustDomain(m *scan.Model) []string {
	s := get(m)
	td := scan.Str(s.mesh, "trustDomain")
	if td == "" {
		td = "cluster.local"
	}
	return append([]string{td}, scan.Strings(s.mesh, "trustDomainAliases")...)
}

// InMesh reports whether w runs with an Istio proxy (sidecar or ambient);
// known is false when the input does not say.
func InMesh(m *scan.Model, w *scan.Workload) (in, known bool) {
	v := get(m).workloadInMesh(w)
	return v == yes, v != unknown
}

// Applies reports whether the AuthorizationPolicy ap selects w (selector
// or targetRefs in w's namespace, or mesh-wide from the root namespace).
func Applies(m *scan.Model, ap *scan.Object, w *scan.Workload) bool {
	s := get(m)
	for _, a := range s.aps {
		if a.obj == ap {
			return s.selects(a, w)
		}
	}
	return false
}

// PeerMode is the effective PeerAuthentication mode of w (STRICT,
// PERMISSIVE or DISABLE) and the object that set it (nil: Istio's default,
// PERMISSIVE), with the ports a portLevelMtls sets to another mode.
func PeerMode(m *scan.Model, w *scan.Workload) (mode string, by *scan.Object, ports map[int]string) {
	s := get(m)
	wl, nsPA, meshPA := s.chain(w.Object.Namespace, w.PodLabels)
	mode, p := resolve(wl, nsPA, meshPA)
	if p != nil {
		by = p.obj
	}
	if wl != nil && len(wl.ports) > 0 {
		ports = map[int]string{}
		for port, pm := range wl.ports {
			if pm == "" {
				pm = mode
			}
			ports[port] = pm
		}
	}
	return mode, by, ports
}

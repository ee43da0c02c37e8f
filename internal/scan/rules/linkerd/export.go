package linkerd

import "meshward.dev/meshward/internal/scan"

// The accessors below expose the effective state the rules resolve,
// read-only, to `meshward policy import` (package migrate).

// Meshed reports whether w runs with a Linkerd proxy; known is false when
// the input does not say.
func Meshed(m *scan.Model, w *scan.Workload) (in, known bool) {
	v := get(m).meshed(w)
	return v == 1, v != 0
}

// DefaultPolicy is the default inbound policy in effect for w (workload
// annotation, then namespace, then the install's, then Linkerd's
// all-unauthenticated) and the object that set it (nil: Linkerd's default).
func DefaultPolicy(m *scan.Model, w *scan.Workload) (policy string, by *scan.Object) {
	s := get(m)
	if dp := w.PodAnnotations[annDefaultPolicy]; dp != "" {
		return dp, w.Object
	}
	if ns := m.Namespace(w.Object.Namespace); nsAnn(ns, annDefaultPolicy) != "" {
		return nsAnn(ns, annDefaultPolicy), ns
	}
	if s.config != nil {
		return s.clusterDP, s.config
	}
	return "all-unauthenticated", nil
}

// IdentityTrustDomain is the install's identityTrustDomain
// ("cluster.local" when the input does not say).
func IdentityTrustDomain(m *scan.Model) string {
	if td := scan.Str(get(m).values, "identityTrustDomain"); td != "" {
		return td
	}
	return "cluster.local"
}

package istio

import (
	"fmt"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleJWTNotRequired = scan.Rule{
	ID: "MW-ISTIO-020", Category: scan.CatAuthzUnauthenticated, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "JWT validated but not required",
	Description: "A RequestAuthentication only rejects requests whose token is invalid: a request with no token at all passes, unless an AuthorizationPolicy requires a request principal. None does for the workloads it selects, so the JWT check protects nothing.",
	Remediation: "Require a principal for the same workloads:\n  apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  spec:\n    selector: {matchLabels: {app: api}}\n    action: DENY\n    rules:\n      - from:\n          - source:\n              notRequestPrincipals: [\"*\"]",
}

// checkRequestAuthn finds RequestAuthentications that no AuthorizationPolicy
// backs with a required request principal.
func checkRequestAuthn(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, o := range m.KindAPI("RequestAuthentication", "security.istio.io") {
		sel := o.Map("spec.selector")
		if len(scan.Map(sel, "matchLabels")) == 0 && len(scan.List(sel, "matchExpressions")) == 0 {
			sel = nil // namespace-wide, as for an AuthorizationPolicy
		}
		ra := &authzPolicy{obj: o, selector: sel}
		aps := append(append([]*authzPolicy(nil), s.apsByNS[o.Namespace]...), s.apsByNS[s.root]...)
		if o.Namespace == s.root {
			aps = s.aps
		}
		workloads := s.selected(ra)
		var open []string
		if len(workloads) == 0 {
			// No workload in the input: judge by the policies alone.
			ok := false
			for _, a := range aps {
				ok = ok || (requiresPrincipal(a) && (a.selector == nil || sameSelector(a.selector, ra.selector)))
			}
			if !ok {
				open = append(open, "the workloads it selects")
			}
		}
		for _, w := range workloads {
			ok := false
			for _, a := range aps {
				ok = ok || (requiresPrincipal(a) && s.selects(a, w))
			}
			if !ok {
				open = append(open, w.Object.Namespace+"/"+w.Object.Name)
			}
		}
		if len(open) > 0 {
			out = append(out, ruleJWTNotRequired.Finding(o, "spec",
				fmt.Sprintf("RequestAuthentication %s/%s validates JWTs, but no AuthorizationPolicy requires a request principal for %s: requests without a token pass.", o.Namespace, o.Name, strings.Join(open, ", "))))
		}
	}
	return out
}

// requiresPrincipal reports whether an enforced policy refuses requests
// without a validated JWT: an ALLOW whose every rule names request
// principals (or request.auth claims), or a DENY of notRequestPrincipals.
func requiresPrincipal(a *authzPolicy) bool {
	if !a.enforced() || len(a.rules) == 0 {
		return false
	}
	switch a.action {
	case "DENY":
		for _, r := range a.rules {
			for _, f := range scan.List(r, "from") {
				if len(scan.Strings(scan.Map(f, "source"), "notRequestPrincipals")) > 0 {
					return true
				}
			}
		}
	case "ALLOW":
		for _, r := range a.rules {
			if !ruleNamesPrincipal(r) {
				return false
			}
		}
		return true
	}
	return false
}

func ruleNamesPrincipal(r any) bool {
	for _, f := range scan.List(r, "from") {
		if len(scan.Strings(scan.Map(f, "source"), "requestPrincipals")) > 0 {
			return true
		}
	}
	for _, w := range scan.List(r, "when") {
		if strings.HasPrefix(scan.Str(w, "key"), "request.auth.") {
			return true
		}
	}
	return false
}

func sameSelector(x, y map[string]any) bool {
	a, b := scan.Map(x, "matchLabels"), scan.Map(y, "matchLabels")
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if fmt.Sprint(b[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

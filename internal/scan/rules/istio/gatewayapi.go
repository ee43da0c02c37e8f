package istio

import (
	"fmt"
	"sort"

	"meshward.dev/meshward/internal/scan"
)

var ruleGatewaySelector = scan.Rule{
	ID: "MW-ISTIO-021", Category: scan.CatAuthzIneffective, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "AuthorizationPolicy selects Gateway API gateway pods with a selector",
	Description: "An AuthorizationPolicy picks the pods of a Gateway API gateway (label gateway.networking.k8s.io/gateway-name) with spec.selector. Istio does not apply workload selectors to the gateways it deploys from a Gateway resource (istioctl analyze: IST0166 IneffectiveSelector): the gateway, usually the edge of the mesh, runs without the policy.",
	Remediation: "Attach the policy to the Gateway instead of its pods:\n  spec:\n    targetRefs:\n    - kind: Gateway\n      group: gateway.networking.k8s.io\n      name: <gateway name>\n(and remove spec.selector).",
}

// labels Istio puts on the pods it deploys for a Gateway API Gateway.
var gatewayAPILabels = []string{"gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name"}

// gatewayAPISelector returns the Gateway a's selector aims at, or "": a
// selector naming a gateway-name label, or selecting pods in the input
// that carry one.
func (s *state) gatewayAPISelector(a *authzPolicy) string {
	if a.selector == nil || len(a.targetRefs) > 0 {
		return ""
	}
	ml := scan.StringMap(a.selector, "matchLabels")
	for _, k := range gatewayAPILabels {
		if v := ml[k]; v != "" {
			return v
		}
	}
	var names []string
	for _, w := range s.m.WorkloadsIn(a.obj.Namespace) {
		if !scan.MatchSelector(a.selector, w.PodLabels) {
			continue
		}
		for _, k := range gatewayAPILabels {
			if v := w.PodLabels[k]; v != "" {
				names = append(names, v)
				break
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}

func gatewaySelectorFinding(a *authzPolicy, gw string) scan.Finding {
	o := a.obj
	return ruleGatewaySelector.Finding(o, "spec.selector",
		fmt.Sprintf("AuthorizationPolicy %s/%s (%s) selects the pods of Gateway API gateway %s with spec.selector, which Istio ignores for such gateways: the gateway runs without it. Replace spec.selector with targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: %s}].", o.Namespace, o.Name, a.action, gw, gw))
}

// gatewayAPIPod reports whether w's pods belong to a Gateway API gateway.
func gatewayAPIPod(w *scan.Workload) bool {
	for _, k := range gatewayAPILabels {
		if w.PodLabels[k] != "" {
			return true
		}
	}
	return false
}

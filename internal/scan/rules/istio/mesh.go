package istio

import (
	"fmt"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleEgressMesh = scan.Rule{
	ID: "MW-ISTIO-010", Category: scan.CatEgressUnrestricted, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "mesh outbound traffic policy is ALLOW_ANY",
	Description: "The mesh config sets outboundTrafficPolicy.mode ALLOW_ANY, or leaves it unset (ALLOW_ANY is Istio's default): a compromised workload can reach any host outside the mesh, and egress is invisible to policy.",
	Remediation: "In the mesh config (ConfigMap istio-system/istio, data.mesh, or IstioOperator spec.meshConfig):\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\nand declare allowed external hosts with ServiceEntry objects.",
}

var ruleEgressSidecar = scan.Rule{
	ID: "MW-ISTIO-011", Category: scan.CatEgressUnrestricted, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "Sidecar re-opens egress with ALLOW_ANY",
	Description: "A Sidecar resource sets outboundTrafficPolicy.mode ALLOW_ANY for the workloads it selects, so they can reach any external host whatever the mesh default.",
	Remediation: "Remove the override or set it to REGISTRY_ONLY:\n  spec:\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY",
}

var ruleIngressPassthrough = scan.Rule{
	ID: "MW-ISTIO-012", Category: scan.CatIngressPassthrough, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "PASSTHROUGH ingress gateway without an AuthorizationPolicy",
	Description: "An ingress Gateway server passes TLS through unterminated, so Istio sees no request and no client identity, and no AuthorizationPolicy selects the gateway: anyone on the internet reaches the backend directly.",
	Remediation: "Terminate TLS at the gateway (tls.mode: SIMPLE or MUTUAL with credentialName), or restrict who may connect:\n  apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  metadata:\n    name: ingress-allowlist\n    namespace: istio-system\n  spec:\n    selector:\n      matchLabels:\n        istio: ingressgateway\n    action: ALLOW\n    rules:\n    - from:\n      - source:\n          remoteIpBlocks: [\"203.0.113.0/24\"]",
}

var ruleTrustDomain = scan.Rule{
	ID: "MW-ISTIO-013", Category: scan.CatTrustDomainDefault, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "multi-cluster mesh uses the default trust domain cluster.local",
	Description: "Remote secrets (label istio/multiCluster) join clusters into one mesh while the trust domain is still cluster.local: every cluster issues the same SPIFFE IDs, so a workload in any cluster can claim any other cluster's identities and policies cannot tell them apart.",
	Remediation: "Give each mesh its own trust domain in the mesh config:\n  trustDomain: prod.example.com\n  trustDomainAliases: [cluster.local]   # during migration",
}

var ruleInjection = scan.Rule{
	ID: "MW-ISTIO-014", Category: scan.CatInjectionDisabled, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "workload opts out of the sidecar in an injected namespace",
	Description: "The workload sets sidecar.istio.io/inject: \"false\" (or istio.io/dataplane-mode: none) in a namespace where injection is on: it runs without mTLS or authorization, and accepts plaintext from anyone.",
	Remediation: "Remove the opt-out from the pod template:\n  spec:\n    template:\n      metadata:\n        annotations:\n          sidecar.istio.io/inject: \"true\"   # or delete the annotation",
}

var rulePortExcluded = scan.Rule{
	ID: "MW-ISTIO-015", Category: scan.CatPortExcluded, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "ports excluded from the sidecar",
	Description: "traffic.sidecar.istio.io/excludeInboundPorts or excludeOutboundPorts takes ports out of the sidecar's capture: traffic on them bypasses mTLS and authorization. Istio's own inbound ports (15020, 15021, 15090), which its injector excludes itself under CNI, are not counted.",
	Remediation: "Remove the exclusion annotation from the pod template:\n  metadata:\n    annotations:\n      traffic.sidecar.istio.io/excludeInboundPorts: \"\"   # delete",
}

var ruleProxyUID = scan.Rule{
	ID: "MW-ISTIO-016", Category: scan.CatPortExcluded, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "app runs as the proxy's UID 1337 and bypasses capture",
	Description: "An application container runs as UID 1337, the UID Istio's iptables rules exempt for the sidecar itself: all its outbound traffic bypasses the proxy, mTLS and egress policy.",
	Remediation: "Run the app as another user:\n  securityContext:\n    runAsUser: 10001",
}

func checkEgress(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	if s.meshObj != nil {
		mode := s.inMeshConfigDefault("outboundTrafficPolicy.mode", "ALLOW_ANY")
		if mode != "REGISTRY_ONLY" {
			field := "data.mesh"
			if s.meshObj.Kind == "IstioOperator" {
				field = "spec.meshConfig"
			}
			out = append(out, ruleEgressMesh.Finding(s.meshObj, field,
				fmt.Sprintf("Mesh outbound traffic policy is %s: every workload in the mesh can open connections to any external host.", mode)))
		}
	}
	for _, o := range m.KindAPI("Sidecar", "networking.istio.io") {
		if strings.ToUpper(o.Str("spec.outboundTrafficPolicy.mode")) == "ALLOW_ANY" {
			out = append(out, ruleEgressSidecar.Finding(o, "spec.outboundTrafficPolicy.mode",
				fmt.Sprintf("Sidecar %s/%s lets the workloads it selects reach any external host (ALLOW_ANY).", o.Namespace, o.Name)))
		}
	}
	return out
}

func checkGateways(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, g := range m.KindAPI("Gateway", "networking.istio.io") {
		passthrough := false
		for _, srv := range g.List("spec.servers") {
			mode := strings.ToUpper(scan.Str(srv, "tls.mode"))
			port := scan.Str(srv, "port.number")
			if mode == "PASSTHROUGH" && port != "15443" {
				passthrough = true
			}
		}
		if !passthrough {
			continue
		}
		sel := scan.StringMap(g.Body, "spec.selector")
		if sel["istio"] == "eastwestgateway" {
			continue
		}
		if s.gatewayAuthorized(g, sel) {
			continue
		}
		out = append(out, ruleIngressPassthrough.Finding(g, "spec.servers",
			fmt.Sprintf("Gateway %s/%s passes TLS through to the backend and no AuthorizationPolicy selects the gateway: any internet client reaches the backend with no identity check at the edge.", g.Namespace, g.Name)))
	}
	// Kubernetes Gateway API gateways deployed by Istio.
	for _, g := range m.KindAPI("Gateway", "gateway.networking.k8s.io") {
		class := g.Str("spec.gatewayClassName")
		if class == "istio-waypoint" || class == "istio-remote" {
			continue
		}
		passthrough := false
		for _, l := range g.List("spec.listeners") {
			if strings.EqualFold(scan.Str(l, "tls.mode"), "Passthrough") {
				passthrough = true
			}
		}
		if !passthrough {
			continue
		}
		sel := map[string]string{"gateway.networking.k8s.io/gateway-name": g.Name}
		if s.gatewayAuthorized(g, sel) {
			continue
		}
		out = append(out, ruleIngressPassthrough.Finding(g, "spec.listeners",
			fmt.Sprintf("Gateway %s/%s has a TLS Passthrough listener and no AuthorizationPolicy selects or targets it: any internet client reaches the backend with no identity check at the edge.", g.Namespace, g.Name)))
	}
	return out
}

func (s *state) gatewayAuthorized(g *scan.Object, sel map[string]string) bool {
	nss := map[string]bool{g.Namespace: true, s.root: true}
	labels := map[string]string{}
	for k, v := range sel {
		labels[k] = v
	}
	for _, w := range s.m.Workloads() {
		if len(sel) > 0 && scan.MatchLabels(sel, w.PodLabels) {
			nss[w.Object.Namespace] = true
			for k, v := range w.PodLabels {
				labels[k] = v
			}
		}
	}
	for _, a := range s.aps {
		if !a.enforced() || !nss[a.obj.Namespace] {
			continue
		}
		if a.selector == nil && len(a.targetRefs) == 0 {
			return true // namespace-wide (or mesh-wide) policy covers the gateway
		}
		if a.selector != nil && s.gatewayAPISelector(a) == "" && scan.MatchSelector(a.selector, labels) {
			return true // (Istio ignores selectors aimed at Gateway API gateways: MW-ISTIO-021)
		}
		for _, t := range a.targetRefs {
			if scan.Str(t, "kind") == "Gateway" && scan.Str(t, "name") == g.Name {
				return true
			}
		}
	}
	return false
}

func checkTrustDomain(m *scan.Model) []scan.Finding {
	s := get(m)
	multi := false
	for _, o := range m.Kind("Secret") {
		if o.Labels["istio/multiCluster"] == "true" {
			multi = true
		}
	}
	if !multi {
		return nil
	}
	td := scan.Str(s.mesh, "trustDomain")
	if td != "" && td != "cluster.local" {
		return nil
	}
	msg := "Clusters are joined into one mesh with remote secrets while the trust domain is cluster.local: identities from every cluster look the same, so a workload in one cluster can act as any workload of the same name in another."
	if s.meshObj != nil {
		return []scan.Finding{ruleTrustDomain.Finding(s.meshObj, "data.mesh", msg)}
	}
	return []scan.Finding{ruleTrustDomain.FindingAt(scan.Ref{Kind: "ConfigMap", Namespace: s.root, Name: "istio"}, "", 0, msg)}
}

func checkWorkloads(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, w := range m.Workloads() {
		o := w.Object
		n := o.Namespace
		if workloadOptsOut(w) && s.namespaceInjectionOn(n) && !(w.PodLabels[labelDataplaneMode] == "none" && !s.ambient[n]) { //nolint:staticcheck // QF1001: the exception (mode none outside ambient) reads clearer whole
			out = append(out, ruleInjection.Finding(o, podField(o, "annotations"),
				fmt.Sprintf("%s %s/%s opts out of the sidecar in injected namespace %s: it runs outside the mesh and accepts plaintext from anyone.", o.Kind, n, o.Name, n)))
		}
		in := s.workloadInMesh(w)
		if in == no || (in == unknown && !hasIstioAnnotations(w)) {
			continue
		}
		var excluded []string
		for _, k := range []string{"traffic.sidecar.istio.io/excludeInboundPorts", "traffic.sidecar.istio.io/excludeOutboundPorts"} {
			if v := userExcludedPorts(k, w.PodAnnotations[k]); v != "" {
				excluded = append(excluded, k+"="+v)
			}
		}
		if len(excluded) > 0 {
			out = append(out, rulePortExcluded.Finding(o, podField(o, "annotations"),
				fmt.Sprintf("%s %s/%s excludes ports from its sidecar (%s): traffic on them skips mTLS and authorization.", o.Kind, n, o.Name, strings.Join(excluded, ", "))))
		}
		if c := uid1337(w); c != "" {
			out = append(out, ruleProxyUID.Finding(o, podField(o, "spec"),
				fmt.Sprintf("Container %s of %s %s/%s runs as UID 1337, the sidecar's own UID: its outbound traffic bypasses the proxy, mTLS and egress policy.", c, o.Kind, n, o.Name)))
		}
	}
	return out
}

// istioOwnInboundPorts are the sidecar's own ports that Istio's injector
// writes into excludeInboundPorts itself under the CNI plugin (15020 the
// agent's merged metrics and status, 15021 health, 15090 Envoy's
// Prometheus): they carry no application traffic, so excluding them
// bypasses nothing.
var istioOwnInboundPorts = map[string]bool{"15020": true, "15021": true, "15090": true}

// userExcludedPorts is the annotation's value without Istio's own ports,
// "" when nothing else is excluded.
func userExcludedPorts(annotation, v string) string {
	var keep []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasSuffix(annotation, "excludeInboundPorts") && istioOwnInboundPorts[p] {
			continue
		}
		keep = append(keep, p)
	}
	return strings.Join(keep, ",")
}

func hasIstioAnnotations(w *scan.Workload) bool {
	for k := range w.PodAnnotations {
		if strings.Contains(k, "istio.io") {
			return true
		}
	}
	return false
}

func uid1337(w *scan.Workload) string {
	for _, c := range w.Containers {
		if c.Name == "istio-proxy" || c.Name == "istio-init" {
			continue
		}
		uid := c.RunAsUser
		if uid == nil {
			uid = w.PodRunAsUser
		}
		if uid != nil && *uid == 1337 {
			return c.Name
		}
	}
	return ""
}

// podField is the dotted path of a pod template field, for line numbers.
func podField(o *scan.Object, f string) string {
	switch o.Kind {
	case "Pod":
		if f == "spec" {
			return "spec"
		}
		return "metadata." + f
	case "CronJob":
		return "spec.jobTemplate.spec.template.metadata." + f
	}
	if f == "spec" {
		return "spec.template.spec"
	}
	return "spec.template.metadata." + f
}

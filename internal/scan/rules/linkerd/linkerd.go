package linkerd

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"meshward.dev/meshward/internal/scan"
)

const (
	annInject        = "linkerd.io/inject"
	annDefaultPolicy = "config.linkerd.io/default-inbound-policy"
	annSkipInbound   = "config.linkerd.io/skip-inbound-ports"
	annSkipOutbound  = "config.linkerd.io/skip-outbound-ports"
	proxyUID         = 2102
)

var openPolicies = map[string]bool{"all-unauthenticated": true, "cluster-unauthenticated": true, "audit": true}

type state struct {
	m         *scan.Model
	present   bool
	config    *scan.Object
	values    map[string]any
	clusterDP string // "" when no install config is in the input
}

func get(m *scan.Model) *state {
	return m.Memo("linkerd", func() any {
		s := &state{m: m}
		for _, o := range m.Kind("ConfigMap") {
			if o.Name == "linkerd-config" {
				var v map[string]any
				if err := yaml.Unmarshal([]byte(o.Str("data.values")), &v); err == nil {
					s.config, s.values, s.present = o, v, true
				}
			}
		}
		if s.config != nil {
			s.clusterDP = scan.Str(s.values, "proxy.defaultInboundPolicy")
			if s.clusterDP == "" {
				s.clusterDP = scan.Str(s.values, "policyController.defaultAllowPolicy")
			}
			if s.clusterDP == "" {
				s.clusterDP = "all-unauthenticated"
			}
		}
		for _, o := range m.Objects {
			if strings.Contains(o.APIVersion, "linkerd.io/") {
				s.present = true
			}
		}
		return s
	}).(*state)
}

func nsAnn(o *scan.Object, k string) string {
	if o == nil {
		return ""
	}
	if v := o.Annotations[k]; v != "" {
		return v
	}
	return o.Labels[k]
}

func (s *state) namespaceInjected(n string) bool {
	v := nsAnn(s.m.Namespace(n), annInject)
	return v == "enabled" || v == "ingress"
}

// meshed: yes (1), no (-1), unknown (0).
func (s *state) meshed(w *scan.Workload) int {
	switch w.PodAnnotations[annInject] {
	case "disabled":
		return -1
	case "enabled", "ingress":
		return 1
	}
	if s.namespaceInjected(w.Object.Namespace) {
		return 1
	}
	if s.m.Namespace(w.Object.Namespace) != nil {
		return -1
	}
	return 0
}

func hasLinkerdAnnotations(w *scan.Workload) bool {
	for k := range w.PodAnnotations {
		if strings.Contains(k, "linkerd.io") {
			return true
		}
	}
	return false
}

var ruleClusterOpen = scan.Rule{
	ID: "MW-LINKERD-001", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "Linkerd cluster default inbound policy is open",
	Description: "The install's proxy.defaultInboundPolicy is all-unauthenticated (Linkerd's default when unset), cluster-unauthenticated or audit, and it is in effect for meshed workloads without their own policy: any client, meshed or not, may connect to them.",
	Remediation: "Install (or upgrade) with an authenticated default:\n  linkerd upgrade --set proxy.defaultInboundPolicy=all-authenticated\nor in Helm values:\n  proxy:\n    defaultInboundPolicy: all-authenticated   # or deny, with Server/AuthorizationPolicy allowlists",
}

var ruleNamespaceOpen = scan.Rule{
	ID: "MW-LINKERD-002", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "namespace default inbound policy is open",
	Description: "The namespace annotation config.linkerd.io/default-inbound-policy opens its meshed workloads to unauthenticated clients (all-unauthenticated, cluster-unauthenticated) or only audits.",
	Remediation: "Set an authenticated default on the namespace:\n  metadata:\n    annotations:\n      config.linkerd.io/default-inbound-policy: all-authenticated   # or deny",
}

var ruleWorkloadOpen = scan.Rule{
	ID: "MW-LINKERD-003", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "workload default inbound policy is open",
	Description: "The pod template annotation config.linkerd.io/default-inbound-policy opens the workload to unauthenticated clients or only audits.",
	Remediation: "Use an authenticated default in the pod template:\n  metadata:\n    annotations:\n      config.linkerd.io/default-inbound-policy: all-authenticated",
}

var ruleControlPlaneOpen = scan.Rule{
	ID: "MW-LINKERD-012", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityInfo, Mesh: scan.MeshLinkerd,
	Title:       "Linkerd's control plane accepts unauthenticated clients (by design)",
	Description: "Linkerd's chart hard-codes config.linkerd.io/default-inbound-policy: all-unauthenticated on its own control-plane components (destination, identity, proxy-injector, ...): the Kubernetes API server calls its webhooks and new proxies call identity before they hold a certificate. Reported once, as information: it is the vendor's design, not a setting to change.",
	Remediation: "Nothing to change in the chart. Keep the linkerd namespace's network exposure minimal (NetworkPolicy allowing the API server and meshed namespaces), and do not copy the annotation to application workloads.",
}

// controlPlaneComponent reports whether w is one of Linkerd's own
// components, which carry the open default by design.
func controlPlaneComponent(w *scan.Workload) bool {
	return w.PodLabels["linkerd.io/control-plane-component"] != "" || w.Object.Labels["linkerd.io/control-plane-component"] != ""
}

var ruleServerOpen = scan.Rule{
	ID: "MW-LINKERD-011", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "Server accessPolicy is open",
	Description: "A Server sets accessPolicy to all-unauthenticated, cluster-unauthenticated or audit, so traffic to its port not matched by any authorization is still allowed.",
	Remediation: "Deny by default on the Server and authorize callers explicitly:\n  spec:\n    accessPolicy: deny",
}

func checkDefaults(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	clusterEffective := false
	nsEffective := map[string]bool{}
	scoped := 0
	for _, n := range m.NamespaceNames() {
		nsObj := m.Namespace(n)
		if !s.namespaceInjected(n) {
			// Workloads may opt in one by one.
			optedIn := false
			for _, w := range m.WorkloadsIn(n) {
				if s.meshed(w) == 1 {
					optedIn = true
				}
			}
			if !optedIn {
				continue
			}
		}
		scoped++
		nsDP := nsAnn(nsObj, annDefaultPolicy)
		wls := m.WorkloadsIn(n)
		if len(wls) == 0 {
			if nsDP == "" {
				clusterEffective = true
			} else {
				nsEffective[n] = true
			}
			continue
		}
		for _, w := range wls {
			if s.meshed(w) != 1 || w.PodAnnotations[annDefaultPolicy] != "" {
				continue
			}
			if nsDP == "" {
				clusterEffective = true
			} else {
				nsEffective[n] = true
			}
		}
	}
	if s.config != nil && openPolicies[s.clusterDP] && (clusterEffective || scoped == 0) {
		out = append(out, ruleClusterOpen.Finding(s.config, "data.values",
			fmt.Sprintf("Linkerd's cluster default inbound policy is %s: meshed workloads without their own policy accept connections from %s.", s.clusterDP, who(s.clusterDP))))
	}
	for _, nsObj := range m.Kind("Namespace") {
		dp := nsAnn(nsObj, annDefaultPolicy)
		if !openPolicies[dp] {
			continue
		}
		if len(m.WorkloadsIn(nsObj.Name)) > 0 && !nsEffective[nsObj.Name] {
			continue // every workload overrides it
		}
		out = append(out, ruleNamespaceOpen.Finding(nsObj, "metadata.annotations",
			fmt.Sprintf("Namespace %s sets default-inbound-policy %s: its meshed workloads accept connections from %s.", nsObj.Name, dp, who(dp))))
	}
	var vendor []string
	var vendorObj *scan.Object
	for _, w := range m.Workloads() {
		dp := w.PodAnnotations[annDefaultPolicy]
		o := w.Object
		if controlPlaneComponent(w) && dp == "all-unauthenticated" {
			vendor = append(vendor, o.Namespace+"/"+o.Name)
			if vendorObj == nil {
				vendorObj = o
			}
			continue
		}
		if !openPolicies[dp] || s.meshed(w) == -1 {
			continue
		}
		out = append(out, ruleWorkloadOpen.Finding(o, "spec.template.metadata.annotations",
			fmt.Sprintf("%s %s/%s sets default-inbound-policy %s: it accepts connections from %s.", o.Kind, o.Namespace, o.Name, dp, who(dp))))
	}
	if vendorObj != nil {
		out = append(out, ruleControlPlaneOpen.Finding(vendorObj, "spec.template.metadata.annotations",
			fmt.Sprintf("Linkerd's control-plane components (%s) accept unauthenticated clients, as its chart requires (webhooks, proxies before their first certificate).", strings.Join(vendor, ", "))))
	}
	for _, o := range m.KindAPI("Server", "policy.linkerd.io") {
		if ap := o.Str("spec.accessPolicy"); openPolicies[ap] {
			out = append(out, ruleServerOpen.Finding(o, "spec.accessPolicy",
				fmt.Sprintf("Server %s/%s has accessPolicy %s: traffic to its port is allowed from %s unless a policy says otherwise.", o.Namespace, o.Name, ap, who(ap))))
		}
	}
	return out
}

func who(dp string) string {
	switch dp {
	case "all-unauthenticated":
		return "any client, meshed or not, from anywhere"
	case "cluster-unauthenticated":
		return "any client in the cluster network, without an identity"
	case "audit":
		return "anyone (audit mode only logs)"
	}
	return dp
}

var ruleInjection = scan.Rule{
	ID: "MW-LINKERD-004", Category: scan.CatInjectionDisabled, Severity: scan.SeverityMedium, Mesh: scan.MeshLinkerd,
	Title:       "workload opts out of the Linkerd proxy in an injected namespace",
	Description: "The pod template sets linkerd.io/inject: disabled in a namespace annotated linkerd.io/inject: enabled: the workload runs without mTLS or policy.",
	Remediation: "Remove the opt-out from the pod template:\n  metadata:\n    annotations:\n      linkerd.io/inject: enabled   # or delete the annotation",
}

var rulePortsSkipped = scan.Rule{
	ID: "MW-LINKERD-005", Category: scan.CatPortExcluded, Severity: scan.SeverityMedium, Mesh: scan.MeshLinkerd,
	Title:       "ports skipped by the Linkerd proxy",
	Description: "config.linkerd.io/skip-inbound-ports or skip-outbound-ports makes traffic on those ports bypass the proxy: no mTLS, no identity, no policy. (opaque-ports is not a bypass.)",
	Remediation: "Remove the skip annotation; for non-HTTP protocols use opaque ports instead:\n  metadata:\n    annotations:\n      config.linkerd.io/opaque-ports: \"5432\"",
}

var ruleProxyUID = scan.Rule{
	ID: "MW-LINKERD-006", Category: scan.CatPortExcluded, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "app runs as the Linkerd proxy's UID 2102 and bypasses capture",
	Description: "An application container runs as UID 2102, which Linkerd's iptables rules exempt for the proxy itself: its traffic skips the proxy.",
	Remediation: "Run the app as another user:\n  securityContext:\n    runAsUser: 10001",
}

func checkWorkloads(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, nsObj := range m.Kind("Namespace") {
		if skipped := skipAnnotations(nsObj.Annotations); skipped != "" && s.namespaceInjected(nsObj.Name) {
			out = append(out, rulePortsSkipped.Finding(nsObj, "metadata.annotations",
				fmt.Sprintf("Namespace %s makes the Linkerd proxy skip ports (%s): traffic on them bypasses mTLS and policy for every workload.", nsObj.Name, skipped)))
		}
	}
	for _, w := range m.Workloads() {
		o := w.Object
		if w.PodAnnotations[annInject] == "disabled" && s.namespaceInjected(o.Namespace) {
			out = append(out, ruleInjection.Finding(o, "spec.template.metadata.annotations",
				fmt.Sprintf("%s %s/%s opts out of the Linkerd proxy in injected namespace %s: it runs without mTLS and policy.", o.Kind, o.Namespace, o.Name, o.Namespace)))
		}
		mm := s.meshed(w)
		if mm == -1 || (mm == 0 && !hasLinkerdAnnotations(w)) {
			continue
		}
		if skipped := skipAnnotations(w.PodAnnotations); skipped != "" {
			out = append(out, rulePortsSkipped.Finding(o, "spec.template.metadata.annotations",
				fmt.Sprintf("%s %s/%s makes the Linkerd proxy skip ports (%s): traffic on them bypasses mTLS and policy.", o.Kind, o.Namespace, o.Name, skipped)))
		}
		for _, c := range w.Containers {
			uid := c.RunAsUser
			if uid == nil {
				uid = w.PodRunAsUser
			}
			if c.Name != "linkerd-proxy" && c.Name != "linkerd-init" && uid != nil && *uid == proxyUID && mm == 1 {
				out = append(out, ruleProxyUID.Finding(o, "spec",
					fmt.Sprintf("Container %s of %s %s/%s runs as UID 2102, the Linkerd proxy's UID: its traffic bypasses the proxy.", c.Name, o.Kind, o.Namespace, o.Name)))
				break
			}
		}
	}
	return out
}

func skipAnnotations(a map[string]string) string {
	var out []string
	for _, k := range []string{annSkipInbound, annSkipOutbound} {
		if v := strings.TrimSpace(a[k]); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return strings.Join(out, ", ")
}

var ruleIssuerLifetime = scan.Rule{
	ID: "MW-LINKERD-010", Category: scan.CatCertLongLived, Severity: scan.SeverityMedium, Mesh: scan.MeshLinkerd,
	Title:       "workload certificates live longer than 30 days",
	Description: "identity.issuer.issuanceLifetime above 720h lets a stolen workload certificate be used for weeks (Linkerd's default is 24h).",
	Remediation: "In the install values:\n  identity:\n    issuer:\n      issuanceLifetime: 24h0m0s",
}

func checkIssuer(m *scan.Model) []scan.Finding {
	s := get(m)
	if s.config == nil {
		return nil
	}
	lt := scan.Str(s.values, "identity.issuer.issuanceLifetime")
	d, err := time.ParseDuration(lt)
	if err != nil || d <= 720*time.Hour {
		return nil
	}
	return []scan.Finding{ruleIssuerLifetime.Finding(s.config, "data.values",
		fmt.Sprintf("Linkerd issues workload certificates valid for %s: a stolen certificate impersonates its workload to every service for that long.", lt))}
}

// Rules returns the Linkerd rules.
func Rules() []scan.Rule {
	var (
		defaults  = scan.NewFamily(checkDefaults)
		workloads = scan.NewFamily(checkWorkloads)
		authz     = scan.NewFamily(checkAuthz)
		issuer    = scan.NewFamily(checkIssuer)
		ports     = scan.NewFamily(checkPortsWithoutServer)
	)
	return []scan.Rule{
		defaults.Rule(ruleClusterOpen),
		defaults.Rule(ruleNamespaceOpen),
		defaults.Rule(ruleWorkloadOpen),
		workloads.Rule(ruleInjection),
		workloads.Rule(rulePortsSkipped),
		workloads.Rule(ruleProxyUID),
		authz.Rule(ruleAllowAll),
		authz.Rule(ruleUnauth),
		authz.Rule(ruleIneffective),
		issuer.Rule(ruleIssuerLifetime),
		defaults.Rule(ruleServerOpen),
		defaults.Rule(ruleControlPlaneOpen),
		ports.Rule(rulePortNoServer),
	}
}

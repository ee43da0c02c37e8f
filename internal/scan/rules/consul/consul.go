package consul

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"meshward.dev/meshward/internal/scan"
)

const (
	annInject         = "consul.hashicorp.com/connect-inject"
	annConnectService = "consul.hashicorp.com/connect-service"
	annExcludeIn      = "consul.hashicorp.com/transparent-proxy-exclude-inbound-ports"
	annExcludeOut     = "consul.hashicorp.com/transparent-proxy-exclude-outbound-ports"
	kindAgent         = "ConsulAgentConfig"
)

var ruleDefaultAllow = scan.Rule{
	ID: "MW-CONSUL-001", Category: scan.CatConsulIntentionsAllow, Severity: scan.SeverityCritical, Mesh: scan.MeshConsul,
	Title:       "intention allows every service to call every service",
	Description: "An intention from * to * with action allow makes the mesh default allow: any service, including a compromised one, may call any other.",
	Remediation: "Deny by default and allow pairs explicitly:\n  Kind = \"service-intentions\"\n  Name = \"*\"\n  Sources = [{ Name = \"*\", Action = \"deny\" }]\nthen one service-intentions entry per destination listing its callers.",
}

var ruleAllowAll = scan.Rule{
	ID: "MW-CONSUL-002", Category: scan.CatAuthzAllowAll, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "intention allows every source to a service",
	Description: "A service-intentions entry allows source * to a specific destination: every service in the mesh may call it.",
	Remediation: "List the callers instead of *:\n  sources:\n  - name: frontend\n    action: allow\n  - name: \"*\"\n    action: deny",
}

var ruleIneffective = scan.Rule{
	ID: "MW-CONSUL-011", Category: scan.CatAuthzIneffective, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "intention names a service that does not exist",
	Description: "A service-intentions entry's destination (or a deny source) names no service known in the input: it protects nothing.",
	Remediation: "Fix the service name to match the registered service (the Kubernetes Service name or the consul.hashicorp.com/connect-service annotation).",
}

var ruleACL = scan.Rule{
	ID: "MW-CONSUL-003", Category: scan.CatConsulACLAllow, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "Consul ACL default policy is allow",
	Description: "acl.default_policy is \"allow\" (explicitly, or by default with ACLs enabled): any request without a token may read and change the catalog, KV and intentions, and intentions default to allow.",
	Remediation: "In the agent config:\n  acl {\n    enabled        = true\n    default_policy = \"deny\"\n  }",
}

var ruleTLSVerify = scan.Rule{
	ID: "MW-CONSUL-004", Category: scan.CatConsulTLSVerifyOff, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "Consul agent TLS verification is turned off",
	Description: "verify_incoming, verify_outgoing or verify_server_hostname is explicitly false: agents accept or make connections without checking certificates, so anyone on the network can join RPC or impersonate a server.",
	Remediation: "In the agent config:\n  tls {\n    defaults {\n      verify_incoming = true\n      verify_outgoing = true\n    }\n    internal_rpc {\n      verify_server_hostname = true\n    }\n  }",
}

var ruleACLOff = scan.Rule{
	ID: "MW-CONSUL-012", Category: scan.CatConsulACLAllow, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "Consul ACLs are not enabled",
	Description: "A Consul server's config (all the files of its config directory together) has no acl block with enabled = true, or the consul-k8s Helm values leave global.acls.manageSystemACLs off (the chart's default): with ACLs off, anyone who reaches the HTTP or RPC API reads and changes the catalog, KV and intentions.",
	Remediation: "In the server config:\n  acl {\n    enabled        = true\n    default_policy = \"deny\"\n  }\nor in the consul-k8s Helm values:\n  global:\n    acls:\n      manageSystemACLs: true",
}

var ruleTLSOff = scan.Rule{
	ID: "MW-CONSUL-013", Category: scan.CatConsulTLSVerifyOff, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "Consul agent TLS is not enabled",
	Description: "A Consul server's config sets no verify_incoming / verify_outgoing anywhere, or the consul-k8s Helm values leave global.tls.enabled off (the chart's default): agent RPC and gossip-joined servers are not authenticated by certificate.",
	Remediation: "In the server config:\n  tls {\n    defaults {\n      ca_file = \"/etc/consul/ca.pem\"\n      cert_file = \"/etc/consul/server.pem\"\n      key_file = \"/etc/consul/server-key.pem\"\n      verify_incoming = true\n      verify_outgoing = true\n    }\n  }\nor in the consul-k8s Helm values:\n  global:\n    tls:\n      enabled: true",
}

var ruleTLSMin = scan.Rule{
	ID: "MW-CONSUL-014", Category: scan.CatConsulTLSVerifyOff, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "Consul accepts TLS 1.0 or 1.1",
	Description: "tls_min_version allows TLS 1.0 or 1.1 (deprecated by RFC 8996): a downgrade exposes agent traffic to attacks on those versions.",
	Remediation: "In the agent config:\n  tls {\n    defaults {\n      tls_min_version = \"TLSv1_2\"\n    }\n  }",
}

var rulePermissive = scan.Rule{
	ID: "MW-CONSUL-005", Category: scan.CatMTLSPermissive, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "Consul mutual TLS mode is permissive",
	Description: "ProxyDefaults or ServiceDefaults sets mutualTLSMode: permissive: sidecars accept plaintext connections that bypass intentions.",
	Remediation: "Remove the field or set it to strict:\n  spec:\n    mutualTLSMode: strict",
}

var ruleEgress = scan.Rule{
	ID: "MW-CONSUL-006", Category: scan.CatEgressUnrestricted, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "transparent proxy may reach any destination",
	Description: "The mesh config entry leaves transparentProxy.meshDestinationsOnly false (the default): services in transparent proxy mode can reach any address outside the mesh.",
	Remediation: "In the Mesh config entry:\n  spec:\n    transparentProxy:\n      meshDestinationsOnly: true\nand reach external services through terminating gateways.",
}

var ruleLeafTTL = scan.Rule{
	ID: "MW-CONSUL-007", Category: scan.CatCertLongLived, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "Consul leaf certificates live longer than 30 days",
	Description: "connect.ca_config.leaf_cert_ttl above 720h lets a stolen service certificate be used for weeks (Consul's default is 72h).",
	Remediation: "In the agent config:\n  connect {\n    ca_config {\n      leaf_cert_ttl = \"72h\"\n    }\n  }",
}

var ruleInjection = scan.Rule{
	ID: "MW-CONSUL-008", Category: scan.CatInjectionDisabled, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "workload opts out of Consul connect injection",
	Description: "The pod template sets consul.hashicorp.com/connect-inject: \"false\" where injection is on: the workload runs without a sidecar, mTLS or intentions.",
	Remediation: "Remove the opt-out from the pod template:\n  metadata:\n    annotations:\n      consul.hashicorp.com/connect-inject: \"true\"",
}

var rulePorts = scan.Rule{
	ID: "MW-CONSUL-009", Category: scan.CatPortExcluded, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "ports excluded from Consul's transparent proxy",
	Description: "transparent-proxy-exclude-inbound-ports or -outbound-ports makes traffic on those ports bypass the sidecar: no mTLS, no intentions.",
	Remediation: "Remove the exclusion annotation from the pod template.",
}

var ruleProxyUID = scan.Rule{
	ID: "MW-CONSUL-010", Category: scan.CatPortExcluded, Severity: scan.SeverityHigh, Mesh: scan.MeshConsul,
	Title:       "app runs as the Consul proxy's UID and bypasses capture",
	Description: "An application container runs as UID 5995 or 5996, which Consul's transparent proxy rules exempt for Envoy and consul-dataplane: its traffic bypasses the sidecar.",
	Remediation: "Run the app as another user:\n  securityContext:\n    runAsUser: 10001",
}

type intentionSource struct {
	name, action string
	idx          int
	l7           bool // permissions with HTTP matches
}

func sources(o *scan.Object) []intentionSource {
	var out []intentionSource
	for i, src := range o.List("spec.sources") {
		is := intentionSource{name: scan.Str(src, "name"), action: strings.ToLower(scan.Str(src, "action")), idx: i}
		if is.action == "" {
			// L7 intentions: permissions carry the actions.
			allow := false
			for _, p := range scan.List(src, "permissions") {
				if strings.ToLower(scan.Str(p, "action")) == "allow" {
					allow = true
					if scan.Map(p, "http") != nil && len(scan.Map(p, "http")) > 0 {
						is.l7 = true
					}
				}
			}
			if allow {
				is.action = "allow"
			}
		}
		out = append(out, is)
	}
	return out
}

func checkIntentions(m *scan.Model) []scan.Finding {
	known := knownServices(m)
	var out []scan.Finding
	for _, o := range m.KindAPI("ServiceIntentions", "consul.hashicorp.com") {
		dest := o.Str("spec.destination.name")
		for _, src := range sources(o) {
			if src.name != "*" || src.action != "allow" || src.l7 {
				continue
			}
			if dest == "*" {
				out = append(out, ruleDefaultAllow.Finding(o, fmt.Sprintf("spec.sources.%d", src.idx),
					"Intention * -> * allows every service to call every other service: the mesh is default allow."))
			} else {
				out = append(out, ruleAllowAll.Finding(o, fmt.Sprintf("spec.sources.%d", src.idx),
					fmt.Sprintf("Intention allows every service (source *) to call %s.", dest)))
			}
			break
		}
		if len(known) == 0 {
			continue
		}
		if dest != "*" && dest != "" && !known[dest] {
			out = append(out, ruleIneffective.Finding(o, "spec.destination",
				fmt.Sprintf("Intentions for %s protect nothing: no service named %s exists in the input.", dest, dest)))
			continue
		}
		for _, src := range sources(o) {
			if src.action == "deny" && src.name != "*" && !strings.Contains(src.name, "*") && !known[src.name] && scan.Str(o.List("spec.sources")[src.idx], "peer") == "" {
				out = append(out, ruleIneffective.Finding(o, fmt.Sprintf("spec.sources.%d", src.idx),
					fmt.Sprintf("Intention denies %s, which does not exist: the deny protects nothing.", src.name)))
				break
			}
		}
	}
	return out
}

// knownServices lists Consul service names the input defines: injected
// workloads' Services and connect-service annotations, ServiceDefaults.
func knownServices(m *scan.Model) map[string]bool {
	out := map[string]bool{}
	for _, o := range m.KindAPI("ServiceDefaults", "consul.hashicorp.com") {
		out[o.Name] = true
	}
	for _, w := range m.Workloads() {
		if w.PodAnnotations[annInject] != "true" {
			continue
		}
		if svc := w.PodAnnotations[annConnectService]; svc != "" {
			for _, s := range strings.Split(svc, ",") {
				out[strings.TrimSpace(s)] = true
			}
			continue
		}
		for _, svc := range m.Services() {
			if svc.Object.Namespace == w.Object.Namespace && len(svc.Selector) > 0 && scan.MatchLabels(svc.Selector, w.PodLabels) {
				out[svc.Object.Name] = true
			}
		}
	}
	return out
}

func checkAgents(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, o := range m.Kind("HelmValues") {
		if v, set := scan.Bool(o.Body, "global.tls.verify"); set && !v {
			out = append(out, ruleTLSVerify.Finding(o, "global.tls.verify",
				fmt.Sprintf("Helm values %s set global.tls.verify: false: Consul agents accept RPC connections without checking client certificates.", o.Name)))
		}
	}
	for _, o := range m.Kind(kindAgent) {
		dp := strings.ToLower(o.Str("acl.default_policy"))
		field := "acl.default_policy"
		if dp == "" {
			dp = strings.ToLower(o.Str("acl_default_policy"))
			field = "acl_default_policy"
		}
		enabled, _ := scan.Bool(o.Body, "acl.enabled")
		if dp == "allow" || (dp == "" && enabled) {
			how := "is \"allow\""
			if dp == "" {
				how, field = "is unset (Consul defaults to \"allow\") with ACLs enabled", "acl"
			}
			out = append(out, ruleACL.Finding(o, field,
				fmt.Sprintf("Consul agent config %s: acl.default_policy %s, so any client without a token can read and write the catalog, KV and intentions.", o.Name, how)))
		}
		var off []string
		for _, base := range []string{"", "tls.defaults.", "tls.internal_rpc.", "tls.https.", "tls.grpc."} {
			for _, k := range []string{"verify_incoming", "verify_outgoing", "verify_server_hostname"} {
				if v, set := scan.Bool(o.Body, base+k); set && !v {
					off = append(off, base+k)
				}
			}
		}
		if len(off) > 0 {
			out = append(out, ruleTLSVerify.Finding(o, off[0],
				fmt.Sprintf("Consul agent config %s turns TLS verification off (%s): agents accept or make RPC connections without checking certificates.", o.Name, strings.Join(off, ", "))))
		}
		if ttl := o.Str("connect.ca_config.leaf_cert_ttl"); ttl != "" {
			if d, err := time.ParseDuration(ttl); err == nil && d > 720*time.Hour {
				out = append(out, ruleLeafTTL.Finding(o, "connect.ca_config.leaf_cert_ttl",
					fmt.Sprintf("Consul issues service certificates valid for %s: a stolen certificate impersonates its service for that long.", ttl)))
			}
		}
	}
	return out
}

// checkServerBasics checks what a Consul server must turn on (ACLs, TLS)
// across the files of its config directory, as the agent merges them, and
// in consul-k8s Helm values; and weak TLS versions in any agent config.
func checkServerBasics(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, o := range m.Kind("HelmValues") {
		if !consulChart(o) {
			continue
		}
		if v, _ := scan.Bool(o.Body, "global.acls.manageSystemACLs"); !v {
			out = append(out, ruleACLOff.Finding(o, "global",
				fmt.Sprintf("Helm values %s leave global.acls.manageSystemACLs off (the consul-k8s default): the cluster's Consul runs without ACLs.", o.Name)))
		}
		if v, _ := scan.Bool(o.Body, "global.tls.enabled"); !v {
			out = append(out, ruleTLSOff.Finding(o, "global",
				fmt.Sprintf("Helm values %s leave global.tls.enabled off (the consul-k8s default): Consul agents talk without TLS.", o.Name)))
		}
	}
	dirs := map[string][]*scan.Object{}
	var order []string
	for _, o := range m.Kind(kindAgent) {
		d := filepath.Dir(o.File)
		if dirs[d] == nil {
			order = append(order, d)
		}
		dirs[d] = append(dirs[d], o)
		for _, k := range []string{"tls_min_version", "tls.defaults.tls_min_version", "tls.internal_rpc.tls_min_version", "tls.https.tls_min_version", "tls.grpc.tls_min_version"} {
			if v := strings.ToLower(o.Str(k)); v == "tls10" || v == "tls11" || v == "tlsv1_0" || v == "tlsv1_1" {
				out = append(out, ruleTLSMin.Finding(o, k, fmt.Sprintf("Consul agent config %s sets %s = %q: TLS 1.0 and 1.1 are accepted.", o.Name, k, o.Str(k))))
			}
		}
	}
	for _, d := range order {
		var server *scan.Object
		acl, tls := false, false
		for _, o := range dirs[d] {
			if v, _ := scan.Bool(o.Body, "server"); v && server == nil {
				server = o
			}
			if v, _ := scan.Bool(o.Body, "acl.enabled"); v || o.Str("acl_datacenter") != "" {
				acl = true
			}
			for _, base := range []string{"", "tls.defaults.", "tls.internal_rpc."} {
				for _, k := range []string{"verify_incoming", "verify_outgoing"} {
					if _, set := scan.Bool(o.Body, base+k); set {
						tls = true
					}
				}
			}
		}
		if server == nil {
			continue // a client's fragment, or config without the server's
		}
		if !acl {
			out = append(out, ruleACLOff.Finding(server, "server",
				fmt.Sprintf("Consul server config %s (with the other files in its directory) never enables ACLs: anyone who reaches the API reads and writes the catalog, KV and intentions.", server.Name)))
		}
		if !tls {
			out = append(out, ruleTLSOff.Finding(server, "server",
				fmt.Sprintf("Consul server config %s (with the other files in its directory) sets no verify_incoming/verify_outgoing: agent RPC is not authenticated by certificate.", server.Name)))
		}
	}
	return out
}

// consulChart tells consul-k8s Helm values from other charts' (Istio's
// also have a global block).
func consulChart(o *scan.Object) bool {
	_, inject := o.Body["connectInject"]
	return inject || o.Str("global.datacenter") != "" || o.Str("global.gossipEncryption.secretName") != ""
}

func checkEntries(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, kind := range []string{"ProxyDefaults", "ServiceDefaults"} {
		for _, o := range m.KindAPI(kind, "consul.hashicorp.com") {
			if strings.EqualFold(o.Str("spec.mutualTLSMode"), "permissive") {
				out = append(out, rulePermissive.Finding(o, "spec.mutualTLSMode",
					fmt.Sprintf("%s %s sets mutualTLSMode permissive: its sidecars accept plaintext from anyone, bypassing intentions.", kind, o.Name)))
			}
		}
	}
	for _, o := range m.KindAPI("Mesh", "consul.hashicorp.com") {
		if v, _ := scan.Bool(o.Body, "spec.transparentProxy.meshDestinationsOnly"); !v {
			out = append(out, ruleEgress.Finding(o, "spec.transparentProxy",
				"The mesh config entry lets transparent proxies reach any destination outside the mesh (meshDestinationsOnly is not true)."))
		}
	}
	return out
}

func (c *consulState) namespaceInjectionOn(n string) bool {
	if c.helmDefault {
		return true
	}
	o := c.m.Namespace(n)
	if o == nil {
		return false
	}
	v := o.Labels[annInject]
	if v == "" {
		v = o.Annotations[annInject]
	}
	return v == "true" || v == "enabled"
}

type consulState struct {
	m           *scan.Model
	helmDefault bool
}

func checkWorkloads(m *scan.Model) []scan.Finding {
	c := &consulState{m: m}
	for _, o := range m.Kind("HelmValues") {
		if v, _ := scan.Bool(o.Body, "connectInject.default"); v {
			c.helmDefault = true
		}
	}
	var out []scan.Finding
	for _, w := range m.Workloads() {
		o := w.Object
		inject := strings.ToLower(w.PodAnnotations[annInject])
		if inject == "false" && c.namespaceInjectionOn(o.Namespace) {
			out = append(out, ruleInjection.Finding(o, "spec.template.metadata.annotations",
				fmt.Sprintf("%s %s/%s opts out of Consul connect injection where injection is on: it runs without mTLS or intentions.", o.Kind, o.Namespace, o.Name)))
		}
		if inject == "false" || (inject == "" && !c.namespaceInjectionOn(o.Namespace) && !hasConsulAnnotations(w)) {
			continue
		}
		var ex []string
		for _, k := range []string{annExcludeIn, annExcludeOut} {
			if v := strings.TrimSpace(w.PodAnnotations[k]); v != "" {
				ex = append(ex, k+"="+v)
			}
		}
		if len(ex) > 0 {
			out = append(out, rulePorts.Finding(o, "spec.template.metadata.annotations",
				fmt.Sprintf("%s %s/%s excludes ports from the transparent proxy (%s): traffic on them bypasses mTLS and intentions.", o.Kind, o.Namespace, o.Name, strings.Join(ex, ", "))))
		}
		for _, ct := range w.Containers {
			uid := ct.RunAsUser
			if uid == nil {
				uid = w.PodRunAsUser
			}
			if uid != nil && (*uid == 5995 || *uid == 5996) && !strings.HasPrefix(ct.Name, "consul") && ct.Name != "envoy-sidecar" {
				out = append(out, ruleProxyUID.Finding(o, "spec",
					fmt.Sprintf("Container %s of %s %s/%s runs as UID %d, which Consul's transparent proxy exempts: its traffic bypasses the sidecar.", ct.Name, o.Kind, o.Namespace, o.Name, *uid)))
				break
			}
		}
	}
	return out
}

func hasConsulAnnotations(w *scan.Workload) bool {
	for k := range w.PodAnnotations {
		if strings.HasPrefix(k, "consul.hashicorp.com/") {
			return true
		}
	}
	return false
}

// Rules returns the Consul rules.
func Rules() []scan.Rule {
	var (
		intentions   = scan.NewFamily(checkIntentions)
		agents       = scan.NewFamily(checkAgents)
		entries      = scan.NewFamily(checkEntries)
		workloads    = scan.NewFamily(checkWorkloads)
		serverBasics = scan.NewFamily(checkServerBasics)
		meshEntries  = scan.NewFamily(checkMeshEntries)
		bootstrap    = scan.NewFamily(checkBootstrap)
	)
	return []scan.Rule{
		intentions.Rule(ruleDefaultAllow),
		intentions.Rule(ruleAllowAll),
		agents.Rule(ruleACL),
		agents.Rule(ruleTLSVerify),
		entries.Rule(rulePermissive),
		entries.Rule(ruleEgress),
		agents.Rule(ruleLeafTTL),
		workloads.Rule(ruleInjection),
		workloads.Rule(rulePorts),
		workloads.Rule(ruleProxyUID),
		intentions.Rule(ruleIneffective),
		serverBasics.Rule(ruleACLOff),
		serverBasics.Rule(ruleTLSOff),
		serverBasics.Rule(ruleTLSMin),
		bootstrap.Rule(ruleBootstrapAllow),
		meshEntries.Rule(ruleExposePaths),
		meshEntries.Rule(ruleAllowPermissive),
	}
}

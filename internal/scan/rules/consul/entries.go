package consul

import (
	"fmt"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleBootstrapAllow = scan.Rule{
	ID: "MW-CONSUL-015", Category: scan.CatConsulIntentionsAllow, Severity: scan.SeverityCritical, Mesh: scan.MeshConsul,
	Title:       "agent config bootstraps a * -> * allow intention",
	Description: "A server's config_entries.bootstrap writes a service-intentions entry allowing * to *: the mesh is default allow, and the server writes the entry again whenever it is missing at leader election, so deleting it from the catalog does not last.",
	Remediation: "Remove the service-intentions entry from config_entries.bootstrap in the agent config, and manage intentions as config entries (consul config write, CRDs):\n  Kind = \"service-intentions\"\n  Name = \"*\"\n  Sources = [{ Name = \"*\", Action = \"deny\" }]",
}

var ruleExposePaths = scan.Rule{
	ID: "MW-CONSUL-016", Category: scan.CatPortExcluded, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "expose.paths serves HTTP paths without mTLS or intentions",
	Description: "Expose paths in ProxyDefaults or ServiceDefaults open an extra Envoy listener that forwards those paths to the app in plaintext from any caller: intentions and mTLS do not apply to them.",
	Remediation: "Remove spec.expose.paths, or keep only a health path that returns no data, e.g.:\n  spec:\n    expose:\n      checks: true",
}

var ruleAllowPermissive = scan.Rule{
	ID: "MW-CONSUL-017", Category: scan.CatMTLSPermissive, Severity: scan.SeverityMedium, Mesh: scan.MeshConsul,
	Title:       "mesh lets services enable permissive mTLS",
	Description: "The mesh config entry sets allowEnablingPermissiveMutualTLS: whoever may write one ServiceDefaults or ProxyDefaults can make its sidecars accept plaintext from anyone, bypassing intentions.",
	Remediation: "In the mesh config entry:\n  spec:\n    allowEnablingPermissiveMutualTLS: false\nand migrate the remaining services to strict mTLS.",
}

// checkMeshEntries checks config entries that open the mesh beside
// intentions: expose paths and the permissive-mTLS switch.
func checkMeshEntries(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, kind := range []string{"ProxyDefaults", "ServiceDefaults"} {
		for _, o := range m.KindAPI(kind, "consul.hashicorp.com") {
			var paths []string
			for _, p := range o.List("spec.expose.paths") {
				if s := scan.Str(p, "path"); s != "" {
					paths = append(paths, s)
				}
			}
			if len(paths) == 0 {
				continue
			}
			out = append(out, ruleExposePaths.Finding(o, "spec.expose.paths",
				fmt.Sprintf("%s %s exposes %s to any caller without mTLS or intentions: remove spec.expose.paths or keep only a health path that returns no data.", kind, o.Name, strings.Join(paths, ", "))))
		}
	}
	for _, o := range m.KindAPI("Mesh", "consul.hashicorp.com") {
		if v, _ := scan.Bool(o.Body, "spec.allowEnablingPermissiveMutualTLS"); v {
			out = append(out, ruleAllowPermissive.Finding(o, "spec.allowEnablingPermissiveMutualTLS",
				"The mesh config entry sets allowEnablingPermissiveMutualTLS: true, so any ServiceDefaults or ProxyDefaults can turn its sidecars permissive; set it to false once no service needs plaintext."))
		}
	}
	return out
}

// checkBootstrap checks the config entries an agent config bootstraps
// (config_entries.bootstrap), which servers write whenever they are absent.
func checkBootstrap(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, o := range m.Kind(kindAgent) {
		for _, e := range bootstrapEntries(o) {
			if !strings.EqualFold(str(e, "kind"), "service-intentions") || str(e, "name") != "*" {
				continue
			}
			for _, src := range list(e, "sources") {
				s, _ := src.(map[string]any)
				if str(s, "name") == "*" && strings.EqualFold(str(s, "action"), "allow") {
					out = append(out, ruleBootstrapAllow.Finding(o, "config_entries.bootstrap",
						fmt.Sprintf("Consul agent config %s bootstraps a service-intentions entry allowing * to *: the mesh is default allow, and the server rewrites it when it is missing; remove it from config_entries.bootstrap and deny * to * instead.", o.Name)))
					break
				}
			}
		}
	}
	return out
}

// bootstrapEntries returns config_entries.bootstrap as mappings; the HCL
// loader turns a one-element list into a mapping.
func bootstrapEntries(o *scan.Object) []map[string]any {
	var out []map[string]any
	for _, e := range list(get(o.Body, "config_entries"), "bootstrap") {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// get returns m's value for key, matching as Consul does for agent config
// entries: any case, with or without underscores.
func get(v any, key string) any {
	m, _ := v.(map[string]any)
	if e, ok := m[key]; ok {
		return e
	}
	want := strings.ReplaceAll(key, "_", "")
	for k, e := range m {
		if strings.EqualFold(strings.ReplaceAll(k, "_", ""), want) {
			return e
		}
	}
	return nil
}

func str(v any, key string) string {
	s, _ := get(v, key).(string)
	return s
}

func list(v any, key string) []any {
	switch t := get(v, key).(type) {
	case []any:
		return t
	case map[string]any:
		return []any{t}
	}
	return nil
}

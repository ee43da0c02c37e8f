package linkerd

import (
	"fmt"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleAllowAll = scan.Rule{
	ID: "MW-LINKERD-007", Category: scan.CatAuthzAllowAll, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "Linkerd authorization admits every client",
	Description: "A ServerAuthorization allows unauthenticated clients from every network (no networks, or 0.0.0.0/0 and ::/0), or an AuthorizationPolicy requires no authentication or only a NetworkAuthentication covering every address: anyone who can reach the pod is allowed.",
	Remediation: "Require mesh identities:\n  apiVersion: policy.linkerd.io/v1alpha1\n  kind: MeshTLSAuthentication\n  metadata:\n    name: web-callers\n  spec:\n    identityRefs:\n    - kind: ServiceAccount\n      name: frontend\nand reference it from the AuthorizationPolicy's requiredAuthenticationRefs.",
}

var ruleUnauth = scan.Rule{
	ID: "MW-LINKERD-008", Category: scan.CatAuthzUnauthenticated, Severity: scan.SeverityMedium, Mesh: scan.MeshLinkerd,
	Title:       "Linkerd authorization without a verified identity",
	Description: "A ServerAuthorization allows unauthenticated clients (or TLS without identity) from some networks, or an AuthorizationPolicy relies only on NetworkAuthentication: callers are trusted for their address, not for a verified identity.",
	Remediation: "Authorize by identity (MeshTLSAuthentication identityRefs, or ServerAuthorization client.meshTLS.serviceAccounts) instead of networks; keep unauthenticated access only for probes on dedicated ports.",
}

var ruleIneffective = scan.Rule{
	ID: "MW-LINKERD-009", Category: scan.CatAuthzIneffective, Severity: scan.SeverityMedium, Mesh: scan.MeshLinkerd,
	Title:       "Linkerd policy object protects nothing",
	Description: "A Server selects no pod, an authorization targets a Server or route that does not exist, or a MeshTLSAuthentication names service accounts or namespaces that do not exist: the policy protects nothing.",
	Remediation: "Point the object at real workloads:\n  spec:\n    podSelector:\n      matchLabels:\n        app: <app label of the pods>\nand make targetRef/server names match existing Server objects.",
}

func coversAll(networks []any) bool {
	for _, n := range networks {
		c := scan.Str(n, "cidr")
		if (c == "0.0.0.0/0" || c == "::/0") && len(scan.List(n, "except")) == 0 {
			return true
		}
	}
	return false
}

func checkAuthz(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	servers := map[string]map[string]*scan.Object{} // ns -> name -> Server
	for _, o := range m.KindAPI("Server", "policy.linkerd.io") {
		if servers[o.Namespace] == nil {
			servers[o.Namespace] = map[string]*scan.Object{}
		}
		servers[o.Namespace][o.Name] = o
		if wls := m.WorkloadsIn(o.Namespace); len(wls) > 0 {
			sel := o.Map("spec.podSelector")
			match := false
			for _, w := range wls {
				if scan.MatchSelector(sel, w.PodLabels) {
					match = true
				}
			}
			if !match {
				out = append(out, ruleIneffective.Finding(o, "spec.podSelector",
					fmt.Sprintf("Server %s/%s selects no pod in the input: authorizations attached to it protect nothing.", o.Namespace, o.Name)))
			}
		}
	}
	for _, o := range m.KindAPI("ServerAuthorization", "policy.linkerd.io") {
		client := o.Map("spec.client")
		unauth, _ := scan.Bool(client, "unauthenticated")
		unauthTLS, _ := scan.Bool(client, "meshTLS.unauthenticatedTLS")
		nets := scan.List(client, "networks")
		switch {
		case unauth && (len(nets) == 0 || coversAll(nets)):
			out = append(out, ruleAllowAll.Finding(o, "spec.client",
				fmt.Sprintf("ServerAuthorization %s/%s allows unauthenticated clients from every network: anyone who can reach the pod is authorized.", o.Namespace, o.Name)))
		case unauth || unauthTLS:
			out = append(out, ruleUnauth.Finding(o, "spec.client",
				fmt.Sprintf("ServerAuthorization %s/%s authorizes clients without a verified identity (by network or unauthenticated TLS): any pod in those networks is trusted.", o.Namespace, o.Name)))
		}
		if name := o.Str("spec.server.name"); name != "" && len(servers[o.Namespace]) > 0 && servers[o.Namespace][name] == nil {
			out = append(out, ruleIneffective.Finding(o, "spec.server.name",
				fmt.Sprintf("ServerAuthorization %s/%s names Server %s, which does not exist: it protects nothing.", o.Namespace, o.Name, name)))
		} else if sel := o.Map("spec.server.selector"); sel != nil && len(servers[o.Namespace]) > 0 {
			match := false
			for _, srv := range servers[o.Namespace] {
				if scan.MatchSelector(sel, srv.Labels) {
					match = true
				}
			}
			if !match {
				out = append(out, ruleIneffective.Finding(o, "spec.server.selector",
					fmt.Sprintf("ServerAuthorization %s/%s selects no Server: it protects nothing.", o.Namespace, o.Name)))
			}
		}
	}
	for _, o := range m.KindAPI("AuthorizationPolicy", "policy.linkerd.io") {
		refs := o.List("spec.requiredAuthenticationRefs")
		identity, network, networkAll, unknownRef := false, false, false, false
		for _, r := range refs {
			kind, name := scan.Str(r, "kind"), scan.Str(r, "name")
			ns := scan.Str(r, "namespace")
			if ns == "" {
				ns = o.Namespace
			}
			switch kind {
			case "MeshTLSAuthentication", "ServiceAccount":
				identity = true
			case "NetworkAuthentication":
				na := m.Find("NetworkAuthentication", ns, name)
				if na == nil {
					unknownRef = true
					continue
				}
				network = true
				if coversAll(na.List("spec.networks")) {
					networkAll = true
				}
			}
		}
		switch {
		case len(refs) == 0:
			out = append(out, ruleAllowAll.Finding(o, "spec",
				fmt.Sprintf("AuthorizationPolicy %s/%s requires no authentication: every client that reaches its target is allowed.", o.Namespace, o.Name)))
		case !identity && networkAll:
			out = append(out, ruleAllowAll.Finding(o, "spec.requiredAuthenticationRefs",
				fmt.Sprintf("AuthorizationPolicy %s/%s only requires a NetworkAuthentication that covers every address: anyone is allowed.", o.Namespace, o.Name)))
		case !identity && network && !unknownRef:
			out = append(out, ruleUnauth.Finding(o, "spec.requiredAuthenticationRefs",
				fmt.Sprintf("AuthorizationPolicy %s/%s authorizes by network only: any pod in those networks is allowed without a verified identity.", o.Namespace, o.Name)))
		}
		tk, tn := o.Str("spec.targetRef.kind"), o.Str("spec.targetRef.name")
		switch tk {
		case "Server":
			if len(servers[o.Namespace]) > 0 && servers[o.Namespace][tn] == nil {
				out = append(out, ruleIneffective.Finding(o, "spec.targetRef",
					fmt.Sprintf("AuthorizationPolicy %s/%s targets Server %s, which does not exist: it protects nothing.", o.Namespace, o.Name, tn)))
			}
		case "HTTPRoute":
			if len(m.Kind("HTTPRoute")) > 0 && m.Find("HTTPRoute", o.Namespace, tn) == nil {
				out = append(out, ruleIneffective.Finding(o, "spec.targetRef",
					fmt.Sprintf("AuthorizationPolicy %s/%s targets HTTPRoute %s, which does not exist: it protects nothing.", o.Namespace, o.Name, tn)))
			}
		}
	}
	for _, o := range m.KindAPI("MeshTLSAuthentication", "policy.linkerd.io") {
		if msg := s.missingIdentity(o); msg != "" {
			out = append(out, ruleIneffective.Finding(o, "spec", fmt.Sprintf("MeshTLSAuthentication %s/%s %s: policies requiring it admit nobody it was meant for.", o.Namespace, o.Name, msg)))
		}
	}
	return out
}

func (s *state) missingIdentity(o *scan.Object) string {
	check := func(sa, ns string) string {
		if s.m.HasNamespaceObjects() && !contains(s.m.NamespaceNames(), ns) {
			return fmt.Sprintf("names namespace %s, which does not exist", ns)
		}
		accounts := map[string]bool{"default": true}
		known := false
		for _, a := range s.m.Kind("ServiceAccount") {
			if a.Namespace == ns {
				accounts[a.Name], known = true, true
			}
		}
		for _, w := range s.m.WorkloadsIn(ns) {
			if known {
				accounts[w.ServiceAccount] = true
			}
		}
		if known && sa != "*" && !accounts[sa] {
			return fmt.Sprintf("names service account %s/%s, which does not exist", ns, sa)
		}
		return ""
	}
	for _, r := range o.List("spec.identityRefs") {
		if scan.Str(r, "kind") != "ServiceAccount" {
			continue
		}
		ns := scan.Str(r, "namespace")
		if ns == "" {
			ns = o.Namespace
		}
		if msg := check(scan.Str(r, "name"), ns); msg != "" {
			return msg
		}
	}
	for _, id := range scan.Strings(o.Body, "spec.identities") {
		parts := strings.Split(id, ".")
		if len(parts) > 3 && parts[2] == "serviceaccount" && !strings.Contains(id, "*") {
			if msg := check(parts[0], parts[1]); msg != "" {
				return msg
			}
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

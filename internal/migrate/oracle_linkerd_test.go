package migrate

import (
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

// linkerdOracle decides connections with Linkerd's Server semantics.
type linkerdOracle struct{ m *scan.Model }

func (o *linkerdOracle) identity(q probeReq) string {
	return q.sa + "." + q.ns + ".serviceaccount.identity.linkerd.cluster.local"
}

func (o *linkerdOracle) idMatch(ids []string, q probeReq) bool {
	for _, id := range ids {
		if id == "*" || id == o.identity(q) || strings.HasPrefix(id, "*.") && strings.HasSuffix(o.identity(q), id[1:]) {
			return true
		}
	}
	return false
}

func open(policy string) bool { return policy != "deny" }

func (o *linkerdOracle) allow(w *scan.Workload, q probeReq) bool {
	if w.PodAnnotations["linkerd.io/inject"] == "disabled" {
		return true
	}
	for _, p := range strings.Split(w.PodAnnotations["config.linkerd.io/skip-inbound-ports"], ",") {
		if strings.TrimSpace(p) == strconv.Itoa(q.port) {
			return true
		}
	}
	var server *scan.Object
	for _, s := range o.m.KindAPI("Server", "policy.linkerd.io") {
		if s.Namespace == w.Object.Namespace && scan.MatchLabels(scan.StringMap(s.Body, "spec.podSelector.matchLabels"), w.PodLabels) &&
			s.Str("spec.port") == strconv.Itoa(q.port) {
			server = s
		}
	}
	if server == nil {
		dp := w.PodAnnotations["config.linkerd.io/default-inbound-policy"]
		if ns := o.m.Namespace(w.Object.Namespace); dp == "" && ns != nil {
			dp = ns.Annotations["config.linkerd.io/default-inbound-policy"]
		}
		return dp == "" || open(dp) // lenient: the install's default is not modelled
	}
	for _, ap := range o.m.KindAPI("AuthorizationPolicy", "policy.linkerd.io") {
		kind, name := ap.Str("spec.targetRef.kind"), ap.Str("spec.targetRef.name")
		if ap.Namespace != server.Namespace || !(kind == "Server" && name == server.Name || kind == "Namespace" || strings.HasSuffix(kind, "Route")) {
			continue
		}
		ok := true
		for _, ref := range ap.List("spec.requiredAuthenticationRefs") {
			switch scan.Str(ref, "kind") {
			case "MeshTLSAuthentication":
				mt := o.m.Find("MeshTLSAuthentication", nonEmpty(scan.Str(ref, "namespace"), ap.Namespace), scan.Str(ref, "name"))
				if mt == nil {
					ok = false
					continue
				}
				m := o.idMatch(scan.Strings(mt.Body, "spec.identities"), q)
				for _, r := range mt.List("spec.identityRefs") {
					rns := nonEmpty(scan.Str(r, "namespace"), mt.Namespace)
					m = m || scan.Str(r, "kind") == "ServiceAccount" && scan.Str(r, "name") == q.sa && rns == q.ns ||
						scan.Str(r, "kind") == "Namespace" && scan.Str(r, "name") == q.ns
				}
				ok = ok && m
			case "ServiceAccount":
				ok = ok && scan.Str(ref, "name") == q.sa && nonEmpty(scan.Str(ref, "namespace"), ap.Namespace) == q.ns
			}
		}
		if ok {
			return true
		}
	}
	for _, sa := range o.m.KindAPI("ServerAuthorization", "policy.linkerd.io") {
		byName := sa.Str("spec.server.name") == server.Name
		bySelector := sa.Str("spec.server.name") == "" && scan.MatchLabels(scan.StringMap(sa.Body, "spec.server.selector.matchLabels"), server.Labels)
		if sa.Namespace != server.Namespace || !byName && !bySelector {
			continue
		}
		if un, _ := scan.Bool(sa.Body, "spec.client.unauthenticated"); un {
			return true
		}
		if o.idMatch(scan.Strings(sa.Body, "spec.client.meshTLS.identities"), q) {
			return true
		}
		for _, r := range sa.List("spec.client.meshTLS.serviceAccounts") {
			if scan.Str(r, "name") == q.sa && nonEmpty(scan.Str(r, "namespace"), sa.Namespace) == q.ns {
				return true
			}
		}
	}
	return open(nonEmpty(server.Str("spec.accessPolicy"), "deny"))
}

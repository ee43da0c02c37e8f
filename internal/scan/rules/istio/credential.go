package istio

import (
	"fmt"
	"sort"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleGatewayCredential = scan.Rule{
	ID: "MW-ISTIO-022", Category: scan.CatCertExpired, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "gateway credential is present but unusable",
	Description: "A Gateway server's tls.credentialName names a Secret that the input has, but the gateway cannot use it: the Secret is in another namespace than the gateway's pods (Istio reads it from theirs), it lacks the certificate or key, or a MUTUAL server has no CA to verify clients with (ca.crt, cacert or a <name>-cacert Secret). Istio then serves no TLS for those hosts (istioctl analyze: IST0161), and the usual quick fix is a plaintext or PASSTHROUGH server.",
	Remediation: "Create the Secret in the namespace of the gateway's pods with the certificate chain, the key and, for MUTUAL, the client CA:\n  kubectl create -n istio-system secret generic <credentialName> \\\n    --from-file=tls.crt=cert.pem --from-file=tls.key=key.pem --from-file=ca.crt=client-ca.pem",
}

// checkGatewayCredentials reports Gateway servers whose credentialName
// Secret is in the input but cannot serve; a Secret the input lacks is not
// evidence (it may be created out of band).
func checkGatewayCredentials(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, g := range m.KindAPI("Gateway", "networking.istio.io") {
		nss := gatewayNamespaces(m, g)
		for i, srv := range g.List("spec.servers") {
			mode := strings.ToUpper(scan.Str(srv, "tls.mode"))
			name := scan.Str(srv, "tls.credentialName")
			if name == "" || (mode != "SIMPLE" && mode != "MUTUAL" && mode != "OPTIONAL_MUTUAL") {
				continue
			}
			if why := credentialProblem(m, nss, name, mode); why != "" {
				out = append(out, ruleGatewayCredential.Finding(g, fmt.Sprintf("spec.servers.%d.tls.credentialName", i),
					fmt.Sprintf("Gateway %s/%s server %d (%s) uses credential %s, but %s: the gateway serves no TLS for %s. Put a Secret %s with tls.crt, tls.key (and ca.crt for MUTUAL) in namespace %s.", g.Namespace, g.Name, i, mode, name, why, strings.Join(scan.Strings(srv, "hosts"), ", "), name, strings.Join(nss, ", "))))
				break // one finding per Gateway
			}
		}
	}
	return out
}

// gatewayNamespaces are the namespaces of the pods g selects, or g's own
// when the input has none of them.
func gatewayNamespaces(m *scan.Model, g *scan.Object) []string {
	sel := scan.StringMap(g.Body, "spec.selector")
	set := map[string]bool{}
	if len(sel) > 0 {
		for _, w := range m.Workloads() {
			if scan.MatchLabels(sel, w.PodLabels) {
				set[w.Object.Namespace] = true
			}
		}
	}
	if len(set) == 0 {
		return []string{g.Namespace}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// credentialProblem says why Secret name cannot serve a gateway in nss, or
// "" when it can or when the input has no Secret of that name at all.
func credentialProblem(m *scan.Model, nss []string, name, mode string) string {
	var here []*scan.Object
	var elsewhere []string
	for _, o := range m.Kind("Secret") {
		if o.Name != name {
			continue
		}
		if contains(nss, o.Namespace) {
			here = append(here, o)
		} else {
			elsewhere = append(elsewhere, o.Namespace)
		}
	}
	if len(here) == 0 {
		if len(elsewhere) == 0 {
			return "" // not in the input: unknown, not unusable
		}
		sort.Strings(elsewhere)
		return fmt.Sprintf("Secret %s is only in namespace %s, not where the gateway's pods run", name, strings.Join(elsewhere, ", "))
	}
	for _, o := range here {
		hasCert := secretHas(o, "tls.crt") || secretHas(o, "cert")
		hasKey := secretHas(o, "tls.key") || secretHas(o, "key")
		switch {
		case !hasCert && !hasKey:
			return fmt.Sprintf("Secret %s/%s has neither a certificate nor a key (tls.crt/tls.key or cert/key)", o.Namespace, name)
		case !hasCert:
			return fmt.Sprintf("Secret %s/%s has a key but no certificate (tls.crt or cert)", o.Namespace, name)
		case !hasKey:
			return fmt.Sprintf("Secret %s/%s has a certificate but no key (tls.key or key)", o.Namespace, name)
		}
		if mode != "SIMPLE" && !secretHas(o, "ca.crt") && !secretHas(o, "cacert") {
			if ca := m.Find("Secret", o.Namespace, name+"-cacert"); ca == nil || !(secretHas(ca, "ca.crt") || secretHas(ca, "cacert")) {
				return fmt.Sprintf("Secret %s/%s has no CA to verify client certificates with (ca.crt, cacert or Secret %s-cacert)", o.Namespace, name, name)
			}
		}
	}
	return ""
}

// secretHas reports whether Secret o has a non-empty value for key in data
// or stringData.
func secretHas(o *scan.Object, key string) bool {
	for _, f := range []string{"data", "stringData"} {
		if v, ok := o.Map(f)[key].(string); ok && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

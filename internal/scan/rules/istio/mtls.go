package istio

import (
	"fmt"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var rulePermissive = scan.Rule{
	ID: "MW-ISTIO-001", Category: scan.CatMTLSPermissive, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "PeerAuthentication PERMISSIVE is in effect",
	Description: "A PeerAuthentication in PERMISSIVE mode (or a PERMISSIVE portLevelMtls entry) is the effective mTLS setting for at least one meshed workload, so those workloads also accept plaintext from any pod or node that can reach them.",
	Remediation: "Set the policy to STRICT:\n  spec:\n    mtls:\n      mode: STRICT\n(and remove PERMISSIVE portLevelMtls entries) once every client has a sidecar.",
}

var ruleDisabled = scan.Rule{
	ID: "MW-ISTIO-002", Category: scan.CatMTLSDisabled, Severity: scan.SeverityCritical, Mesh: scan.MeshIstio,
	Title:       "PeerAuthentication DISABLE turns off mTLS for meshed workloads",
	Description: "A PeerAuthentication with mode DISABLE (or a DISABLE portLevelMtls entry) is effective for a meshed workload: its sidecar accepts only plaintext there, without peer identity.",
	Remediation: "Set the mode to STRICT:\n  spec:\n    mtls:\n      mode: STRICT\nand remove DISABLE portLevelMtls entries.",
}

var ruleNoPeerAuth = scan.Rule{
	ID: "MW-ISTIO-003", Category: scan.CatMTLSPermissive, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "meshed namespace has no STRICT PeerAuthentication (Istio defaults to PERMISSIVE)",
	Description: "No PeerAuthentication at workload, namespace or mesh (root namespace) level sets a mode for workloads of this meshed namespace, so Istio's default PERMISSIVE applies: they accept plaintext from anyone who can reach them.",
	Remediation: "Add a STRICT policy for the namespace (or one mesh-wide in the root namespace, istio-system):\n  apiVersion: security.istio.io/v1\n  kind: PeerAuthentication\n  metadata:\n    name: default\n    namespace: <namespace>\n  spec:\n    mtls:\n      mode: STRICT",
}

func checkPeerAuth(m *scan.Model) []scan.Finding {
	s := get(m)
	u := s.mtls()
	var out []scan.Finding
	for _, p := range s.pas {
		if u.disabled[p] {
			out = append(out, ruleDisabled.Finding(p.obj, "spec.mtls.mode",
				fmt.Sprintf("PeerAuthentication %s/%s %s mTLS DISABLE: meshed workloads it governs accept only plaintext, so any pod or node on the network can call them without an identity.", p.obj.Namespace, p.obj.Name, level(s, p))))
		}
		if u.permissive[p] {
			out = append(out, rulePermissive.Finding(p.obj, "spec.mtls.mode",
				fmt.Sprintf("PeerAuthentication %s/%s %s PERMISSIVE: workloads it governs accept plaintext as well as mTLS, so any pod or node that can reach them connects without an identity.", p.obj.Namespace, p.obj.Name, level(s, p))))
		}
	}
	for n := range u.implicit {
		if s.ns[n] != yes {
			continue
		}
		out = append(out, nsFinding(m, &ruleNoPeerAuth, n,
			fmt.Sprintf("Namespace %s is in the mesh but no PeerAuthentication sets a mode for its workloads: Istio's default PERMISSIVE lets any pod or node reach them in plaintext.", n)))
	}
	return out
}

func level(s *state, p *peerAuth) string {
	switch {
	case p.selector != nil:
		return "sets (for the workloads it selects)"
	case p.obj.Namespace == s.root:
		return "sets mesh-wide"
	default:
		return "sets for its namespace"
	}
}

// nsFinding anchors a finding on a Namespace, present in the input or not.
func nsFinding(m *scan.Model, r *scan.Rule, n, msg string) scan.Finding {
	rem := strings.ReplaceAll(r.Remediation, "<namespace>", n)
	if o := m.Namespace(n); o != nil {
		return r.Finding(o, "metadata", msg, rem)
	}
	file, line := "", 0
	if ws := m.WorkloadsIn(n); len(ws) > 0 {
		file, line = ws[0].Object.File, ws[0].Object.Line
	}
	return r.FindingAt(scan.Ref{Kind: "Namespace", Name: n}, file, line, msg, rem)
}

var ruleDRPlaintext = scan.Rule{
	ID: "MW-ISTIO-004", Category: scan.CatMTLSNotEnforcedClient, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "DestinationRule sends plaintext or non-mesh TLS to an in-mesh service",
	Description: "A DestinationRule sets tls.mode DISABLE, SIMPLE or MUTUAL (anything but ISTIO_MUTUAL) for a host inside the mesh, so clients send plaintext or TLS without their mesh identity, and the server cannot authorize them by principal.",
	Remediation: "Use Istio mTLS towards in-mesh hosts (or drop the tls block and let auto mTLS apply):\n  spec:\n    trafficPolicy:\n      tls:\n        mode: ISTIO_MUTUAL",
}

var ruleDRNoVerify = scan.Rule{
	ID: "MW-ISTIO-019", Category: scan.CatMTLSNotEnforcedClient, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "DestinationRule TLS does not verify the server",
	Description: "A DestinationRule originates TLS with insecureSkipVerify: true, so anyone on the path can impersonate the upstream.",
	Remediation: "Remove insecureSkipVerify and give the CA that signs the upstream:\n  tls:\n    mode: SIMPLE\n    credentialName: upstream-ca   # or caCertificates: /etc/certs/ca.pem\n    sni: api.example.com",
}

type drTLS struct {
	path string
	tls  map[string]any
}

func drTLSSettings(o *scan.Object) []drTLS {
	var out []drTLS
	add := func(base string, tp map[string]any) {
		if t := scan.Map(tp, "tls"); t != nil {
			out = append(out, drTLS{base + ".tls", t})
		}
		for i, pl := range scan.List(tp, "portLevelSettings") {
			if t := scan.Map(pl, "tls"); t != nil {
				out = append(out, drTLS{fmt.Sprintf("%s.portLevelSettings.%d.tls", base, i), t})
			}
		}
	}
	add("spec.trafficPolicy", o.Map("spec.trafficPolicy"))
	for i, ss := range o.List("spec.subsets") {
		add(fmt.Sprintf("spec.subsets.%d.trafficPolicy", i), scan.Map(ss, "trafficPolicy"))
	}
	return out
}

// hostNamespace returns the namespace of a cluster-local host and whether
// the host is inside the cluster at all.
func (s *state) hostNamespace(host, own string) (string, bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case h == "*" || strings.HasPrefix(h, "*.svc") || h == "*.local" || h == "*.cluster.local":
		return "", true
	case strings.Contains(h, ".svc.") || strings.HasSuffix(h, ".svc"):
		parts := strings.Split(h, ".")
		if len(parts) >= 2 {
			if parts[0] == "*" {
				return parts[1], true
			}
			return parts[1], true
		}
		return own, true
	case !strings.Contains(h, "."):
		return own, true
	}
	parts := strings.Split(h, ".")
	if len(parts) == 2 && s.nsNames[parts[1]] {
		return parts[1], true
	}
	for _, svc := range s.m.Services() {
		if h == svc.Object.Name+"."+svc.Object.Namespace {
			return svc.Object.Namespace, true
		}
	}
	return "", false
}

func checkDestinationRules(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, o := range m.KindAPI("DestinationRule", "networking.istio.io") {
		host := o.Str("spec.host")
		ns, local := s.hostNamespace(host, o.Namespace)
		meshed := local && (ns == "" || s.ns[ns] != no)
		// A host in a namespace the files do not declare may well run
		// without sidecars: that is unverified, not in-mesh (a live scan
		// has every namespace and its labels).
		unverified := meshed && ns != "" && s.ns[ns] == unknown && !s.live
		for _, t := range drTLSSettings(o) {
			mode := strings.ToUpper(scan.Str(t.tls, "mode"))
			skip, _ := scan.Bool(t.tls, "insecureSkipVerify")
			switch {
			case unverified && mode != "DISABLE" && verifiesServer(t.tls):
				// TLS to a server with its own CA or credential: a
				// service that terminates TLS itself, not a mesh peer.
				if skip {
					out = append(out, ruleDRNoVerify.Finding(o, t.path+".insecureSkipVerify",
						fmt.Sprintf("DestinationRule %s/%s originates TLS to %s without verifying its certificate: anyone on the path can impersonate %s to every client.", o.Namespace, o.Name, host, host)))
				}
			case meshed && (mode == "DISABLE" || mode == "SIMPLE" || mode == "MUTUAL"):
				what := "plaintext"
				if mode != "DISABLE" {
					what = mode + " TLS without the client's mesh identity"
				}
				f := ruleDRPlaintext.Finding(o, t.path+".mode",
					fmt.Sprintf("DestinationRule %s/%s makes every client of %s send %s, so the in-mesh server sees no verified peer identity and traffic can be read or spoofed on the network.", o.Namespace, o.Name, host, what))
				if unverified {
					f.Severity = scan.SeverityLow
					f.Message = fmt.Sprintf("DestinationRule %s/%s makes every client of %s send %s; if %s runs with a sidecar, the server sees no verified peer identity. Unverified: namespace %s is not in the input (scan --kubeconfig resolves it).", o.Namespace, o.Name, host, what, host, ns)
				}
				out = append(out, f)
			case !meshed && (mode == "SIMPLE" || mode == "MUTUAL") && skip:
				out = append(out, ruleDRNoVerify.Finding(o, t.path+".insecureSkipVerify",
					fmt.Sprintf("DestinationRule %s/%s originates TLS to %s without verifying its certificate: anyone on the path can impersonate %s to every client.", o.Namespace, o.Name, host, host)))
			}
		}
	}
	return out
}

// verifiesServer: the TLS settings name a CA or a credential to verify the
// upstream with.
func verifiesServer(tls map[string]any) bool {
	return scan.Str(tls, "caCertificates") != "" || scan.Str(tls, "credentialName") != ""
}

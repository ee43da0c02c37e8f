package istio

import (
	"fmt"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var ruleAuthzMissing = scan.Rule{
	ID: "MW-ISTIO-005", Category: scan.CatAuthzMissing, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "meshed workloads have no enforced AuthorizationPolicy (default allow)",
	Description: "No enforced AuthorizationPolicy (ALLOW, DENY or CUSTOM, not dry-run) applies at workload, namespace or root level to some workloads of this meshed namespace, so any workload in the mesh (and, where plaintext is accepted, anyone) may call them: east-west traffic is unrestricted.",
	Remediation: "Deny by default in the namespace, then allow callers explicitly:\n  apiVersion: security.istio.io/v1\n  kind: AuthorizationPolicy\n  metadata:\n    name: allow-nothing\n    namespace: <namespace>\n  spec: {}\nand one ALLOW policy per service listing its callers' principals.",
}

var ruleAllowAll = scan.Rule{
	ID: "MW-ISTIO-006", Category: scan.CatAuthzAllowAll, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "AuthorizationPolicy ALLOW rule admits every source",
	Description: "An ALLOW AuthorizationPolicy has a rule with no from, to or when constraint (`{}`), or whose only source is 0.0.0.0/0, so it admits every caller and makes the workload's allowlist meaningless.",
	Remediation: "Replace the empty rule with the callers that need access:\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/<ns>/sa/<caller>\"]",
}

var ruleUnauthPrincipal = scan.Rule{
	ID: "MW-ISTIO-007", Category: scan.CatAuthzUnauthenticated, Severity: scan.SeverityHigh, Mesh: scan.MeshIstio,
	Title:       "authorization decided without a verified peer identity where plaintext is accepted",
	Description: "An ALLOW rule keyed only on ipBlocks or negative matches (notPrincipals, notNamespaces), or a DENY rule keyed on principals or namespaces, governs a workload that accepts plaintext: a plaintext caller has no principal, so it passes the ALLOW rule or slips past the DENY rule.",
	Remediation: "Make the workload STRICT (PeerAuthentication mode: STRICT) and key rules on principals:\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/<ns>/sa/<caller>\"]\nFor deny rules use the correct pattern: action: DENY with notPrincipals: [\"*\"] to refuse unauthenticated callers.",
}

var rulePathNorm = scan.Rule{
	ID: "MW-ISTIO-008", Category: scan.CatAuthzPathNormalization, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "path-based AuthorizationPolicy without strict path normalization",
	Description: "A DENY policy matching paths/notPaths, or an ALLOW policy using notPaths, is enforced while the mesh's pathNormalization is NONE or BASE (Istio's default): /admin//x, /admin%2Fx or /ADMIN variants reach the app without matching the rule.",
	Remediation: "Normalize paths mesh-wide (ConfigMap istio-system/istio, data.mesh):\n  pathNormalization:\n    normalization: MERGE_SLASHES   # or DECODE_AND_MERGE_SLASHES\nand prefer ALLOW policies listing the paths that are allowed.",
}

var ruleDryRun = scan.Rule{
	ID: "MW-ISTIO-009", Category: scan.CatAuthzDryRunOnly, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "the only AuthorizationPolicy for a workload is dry-run",
	Description: "An AuthorizationPolicy annotated istio.io/dry-run: \"true\" is the only authorization selecting some workloads: it only logs, so those workloads admit every caller.",
	Remediation: "Once the dry-run logs look right, enforce the policy:\n  metadata:\n    annotations:\n      istio.io/dry-run: \"false\"   # or remove the annotation",
}

var ruleIneffective = scan.Rule{
	ID: "MW-ISTIO-017", Category: scan.CatAuthzIneffective, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "AuthorizationPolicy protects nothing",
	Description: "An AuthorizationPolicy selects no workload in the input, targets a Service that does not exist, or names namespaces or service accounts that do not exist: it protects nothing while it looks like it does.",
	Remediation: "Fix the selector (spec.selector.matchLabels must equal the pod template's labels) or the principals/namespaces to name real workloads:\n  spec:\n    selector:\n      matchLabels:\n        app: <app label of the pods>",
}

var ruleL7Unenforceable = scan.Rule{
	ID: "MW-ISTIO-018", Category: scan.CatAuthzIneffective, Severity: scan.SeverityMedium, Mesh: scan.MeshIstio,
	Title:       "L7 authorization rules that cannot be enforced",
	Description: "An AuthorizationPolicy matches HTTP attributes (paths, methods, hosts, headers, request principals) where only L4 is seen: in an ambient namespace without a waypoint, or on a port the Service declares as TCP. Istio cannot evaluate those rules, so the policy does not protect what it names.",
	Remediation: "For ambient, deploy a waypoint and attach the policy to it:\n  metadata:\n    labels: {}\n  spec:\n    targetRefs:\n    - kind: Gateway\n      group: gateway.networking.k8s.io\n      name: waypoint\n(label the namespace istio.io/use-waypoint: waypoint); for TCP ports use L4 fields only.",
}

// source kinds of a rule's from entries.
func sourceFields(src map[string]any) (identity, negative, network bool) {
	for k := range src {
		switch k {
		case "principals", "namespaces", "requestPrincipals":
			identity = true
		case "notPrincipals", "notNamespaces", "notRequestPrincipals":
			negative = true
		case "ipBlocks", "remoteIpBlocks", "notIpBlocks", "notRemoteIpBlocks":
			network = true
		}
	}
	return identity, negative, network
}

func everyone(src map[string]any) bool {
	if len(src) == 0 {
		return true
	}
	for k := range src {
		if k != "ipBlocks" && k != "remoteIpBlocks" {
			return false
		}
	}
	for _, k := range []string{"ipBlocks", "remoteIpBlocks"} {
		for _, b := range scan.Strings(src, k) {
			if b == "0.0.0.0/0" || b == "::/0" {
				return true
			}
		}
	}
	return false
}

func ruleAdmitsAll(r any) bool {
	rm, _ := r.(map[string]any)
	if len(scan.List(rm, "to")) > 0 || len(scan.List(rm, "when")) > 0 {
		return false
	}
	from := scan.List(rm, "from")
	if len(from) == 0 {
		return true
	}
	for _, f := range from {
		if everyone(scan.Map(f, "source")) {
			return true
		}
	}
	return false
}

// ruleWithoutIdentity: an ALLOW rule whose sources never require a
// verified identity.
func ruleWithoutIdentity(r any) bool {
	from := scan.List(r, "from")
	if len(from) == 0 {
		return false
	}
	for _, w := range scan.List(r, "when") {
		k := scan.Str(w, "key")
		if strings.HasPrefix(k, "source.principal") || strings.HasPrefix(k, "source.namespace") || strings.HasPrefix(k, "request.auth") {
			return false // the condition requires an identity
		}
	}
	for _, f := range from {
		id, neg, netw := sourceFields(scan.Map(f, "source"))
		if id || !(neg || netw) { //nolint:staticcheck // QF1001: "requires an identity, or is not narrowed by a negation or network" reads clearer
			return false
		}
	}
	return true
}

// denyOnIdentity: a DENY rule keyed on positive identity matches, which a
// plaintext caller (no identity) never matches.
func denyOnIdentity(r any) bool {
	for _, f := range scan.List(r, "from") {
		src := scan.Map(f, "source")
		if len(scan.List(src, "principals")) > 0 || len(scan.List(src, "namespaces")) > 0 {
			return true
		}
	}
	return false
}

// selected lists the known workloads a policy applies to.
func (s *state) selected(a *authzPolicy) []*scan.Workload {
	var out []*scan.Workload
	candidates := s.m.WorkloadsIn(a.obj.Namespace)
	if a.obj.Namespace == s.root {
		candidates = s.m.Workloads()
	}
	for _, w := range candidates {
		if s.selects(a, w) && s.workloadInMesh(w) != no {
			out = append(out, w)
		}
	}
	return out
}

// coverage classifies each in-mesh workload's authorization.
type coverage struct {
	enforced map[*scan.Workload]bool
	dryRun   map[*scan.Workload][]*authzPolicy
}

func (s *state) coverage() *coverage {
	return s.m.Memo("istio.authz", func() any {
		c := &coverage{enforced: map[*scan.Workload]bool{}, dryRun: map[*scan.Workload][]*authzPolicy{}}
		for _, w := range s.m.Workloads() {
			aps := s.apsByNS[w.Object.Namespace]
			if w.Object.Namespace != s.root {
				aps = append(aps[:len(aps):len(aps)], s.apsByNS[s.root]...)
			}
			for _, a := range aps {
				if !s.selects(a, w) {
					continue
				}
				if a.enforced() {
					c.enforced[w] = true
				} else if a.dryRun {
					c.dryRun[w] = append(c.dryRun[w], a)
				}
			}
		}
		return c
	}).(*coverage)
}

func (s *state) namespaceHasEnforced(n string, wide bool) bool {
	for _, a := range s.aps {
		if !a.enforced() {
			continue
		}
		if s.namespaceWide(a, n) || (!wide && a.obj.Namespace == n) {
			return true
		}
	}
	return false
}

func checkAuthzMissing(m *scan.Model) []scan.Finding {
	s := get(m)
	c := s.coverage()
	var out []scan.Finding
	for _, n := range m.NamespaceNames() {
		if s.ns[n] != yes || n == s.root {
			continue
		}
		wls := m.WorkloadsIn(n)
		missing := false
		if len(wls) == 0 {
			missing = !s.namespaceHasEnforced(n, false) && !s.hasDryRunIn(n)
		}
		for _, w := range wls {
			if s.workloadInMesh(w) == no {
				continue
			}
			if !c.enforced[w] && len(c.dryRun[w]) == 0 {
				missing = true
			}
		}
		if missing {
			out = append(out, nsFinding(m, &ruleAuthzMissing, n,
				fmt.Sprintf("Namespace %s is in the mesh but some of its workloads have no enforced AuthorizationPolicy: every workload in the mesh can call them (default allow).", n)))
		}
	}
	return out
}

func (s *state) hasDryRunIn(n string) bool {
	for _, a := range s.aps {
		if a.dryRun && (a.obj.Namespace == n || s.namespaceWide(a, n)) {
			return true
		}
	}
	return false
}

func checkAuthzPolicies(m *scan.Model) []scan.Finding {
	s := get(m)
	c := s.coverage()
	pathNorm := strings.ToUpper(scan.Str(s.mesh, "pathNormalization.normalization"))
	weakNorm := pathNorm == "" || pathNorm == "NONE" || pathNorm == "BASE" || pathNorm == "DEFAULT"
	var out []scan.Finding
	for _, a := range s.aps {
		o := a.obj
		sel := s.selected(a)
		if a.action == "ALLOW" && !a.dryRun {
			allowAll := false
			for i, r := range a.rules {
				if ruleAdmitsAll(r) {
					allowAll = true
					out = append(out, ruleAllowAll.Finding(o, "spec.rules."+strconv.Itoa(i),
						fmt.Sprintf("AuthorizationPolicy %s/%s has an ALLOW rule that matches every request: any caller, with or without a mesh identity, reaches %s.", o.Namespace, o.Name, targetDesc(s, a))))
					break
				}
			}
			if !allowAll {
				for i, r := range a.rules {
					if ruleWithoutIdentity(r) && s.plaintextFor(a, sel) {
						out = append(out, ruleUnauthPrincipal.Finding(o, "spec.rules."+strconv.Itoa(i),
							fmt.Sprintf("AuthorizationPolicy %s/%s allows callers by IP block or negative match only, and %s accepts plaintext: a caller without any mesh identity is allowed.", o.Namespace, o.Name, targetDesc(s, a))))
						break
					}
				}
			}
		}
		if a.action == "DENY" && !a.dryRun {
			for i, r := range a.rules {
				if denyOnIdentity(r) && s.plaintextFor(a, sel) {
					out = append(out, ruleUnauthPrincipal.Finding(o, "spec.rules."+strconv.Itoa(i),
						fmt.Sprintf("AuthorizationPolicy %s/%s denies callers by principal or namespace, but %s accepts plaintext: a plaintext caller has no principal and slips past the DENY rule.", o.Namespace, o.Name, targetDesc(s, a))))
					break
				}
			}
		}
		if weakNorm && !a.dryRun && usesRiskyPaths(a) {
			out = append(out, rulePathNorm.Finding(o, "spec.rules",
				fmt.Sprintf("AuthorizationPolicy %s/%s (%s) matches on paths while the mesh path normalization is %s: encoded or duplicated-slash variants of a path bypass it for every caller.", o.Namespace, o.Name, a.action, orDefault(pathNorm, "BASE (default)"))))
		}
		if a.dryRun && s.dryRunOnly(a, sel, c) {
			out = append(out, ruleDryRun.Finding(o, "metadata.annotations",
				fmt.Sprintf("AuthorizationPolicy %s/%s is dry-run and nothing else authorizes %s: every caller is admitted; the policy only logs.", o.Namespace, o.Name, targetDesc(s, a))))
		}
		if gw := s.gatewayAPISelector(a); gw != "" {
			if a.enforced() {
				out = append(out, gatewaySelectorFinding(a, gw))
			}
		} else if msg, unverified := s.ineffective(a, sel); msg != "" {
			f := ruleIneffective.Finding(o, "spec", fmt.Sprintf("AuthorizationPolicy %s/%s %s, so it protects nothing.", o.Namespace, o.Name, msg))
			if unverified != "" {
				// Files are not the cluster: what they do not declare may
				// exist. Say so, at a lower severity; a live scan knows.
				f.Severity = scan.SeverityLow
				f.Message += fmt.Sprintf(" Unverified: namespace %s is not in the input (scan --kubeconfig resolves it).", unverified)
			}
			out = append(out, f)
		} else if msg := s.l7Unenforceable(a, sel); msg != "" {
			out = append(out, ruleL7Unenforceable.Finding(o, "spec.rules", fmt.Sprintf("AuthorizationPolicy %s/%s %s.", o.Namespace, o.Name, msg)))
		}
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func targetDesc(s *state, a *authzPolicy) string {
	switch {
	case len(a.targetRefs) > 0:
		return "its target"
	case a.selector == nil && a.obj.Namespace == s.root:
		return "every workload in the mesh"
	case a.selector == nil:
		return "every workload in namespace " + a.obj.Namespace
	default:
		return "the workloads it selects"
	}
}

// plaintextFor reports whether a workload the policy governs accepts
// plaintext (or, with no workload known, whether its namespace would).
func (s *state) plaintextFor(a *authzPolicy, sel []*scan.Workload) bool {
	if len(sel) == 0 {
		if s.ns[a.obj.Namespace] == no {
			return false
		}
		// No workload in the input: the pods the selector names are
		// governed by the workload-level PeerAuthentications that select
		// those labels, not only by the namespace's policy.
		return s.labelsAcceptPlaintext(a.obj.Namespace, scan.StringMap(a.selector, "matchLabels"))
	}
	for _, w := range sel {
		if s.acceptsPlaintext(w.Object.Namespace, w) {
			return true
		}
	}
	return false
}

func usesRiskyPaths(a *authzPolicy) bool {
	for _, r := range a.rules {
		for _, t := range scan.List(r, "to") {
			op := scan.Map(t, "operation")
			hasPaths := len(scan.List(op, "paths")) > 0
			hasNot := len(scan.List(op, "notPaths")) > 0
			if (a.action == "DENY" && (hasPaths || hasNot)) || (a.action == "ALLOW" && hasNot) {
				return true
			}
		}
	}
	return false
}

func (s *state) dryRunOnly(a *authzPolicy, sel []*scan.Workload, c *coverage) bool {
	if len(sel) > 0 {
		for _, w := range sel {
			if !c.enforced[w] {
				return true
			}
		}
		return false
	}
	if s.ns[a.obj.Namespace] == no {
		return false
	}
	if len(s.m.WorkloadsIn(a.obj.Namespace)) > 0 && a.selector != nil {
		return false // selects nothing: reported as ineffective instead
	}
	return !s.namespaceHasEnforced(a.obj.Namespace, false)
}

// builtinNamespaces exist in every cluster, declared or not.
var builtinNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// namespaceMissing reports whether namespace n is known not to exist; when
// only files say so (they may not declare every namespace), unverified
// names it. A namespace is only ever missing when the input declares
// namespaces at all.
func (s *state) namespaceMissing(n string) (missing bool, unverified string) {
	if builtinNamespaces[n] || s.nsNames[n] || !s.m.HasNamespaceObjects() {
		return false, ""
	}
	if s.live {
		return true, ""
	}
	return true, n
}

func doesNotExist(unverified string) string {
	if unverified != "" {
		return "the input does not declare"
	}
	return "does not exist"
}

// ineffective explains why a policy protects nothing, or returns "". When
// the reason rests on a namespace the input does not declare, unverified
// names it.
func (s *state) ineffective(a *authzPolicy, sel []*scan.Workload) (msg, unverified string) {
	msg = s.ineffectiveReason(a, sel, &unverified)
	return msg, unverified
}

func (s *state) ineffectiveReason(a *authzPolicy, sel []*scan.Workload, unverified *string) string {
	n := a.obj.Namespace
	if len(a.targetRefs) > 0 {
		for _, t := range a.targetRefs {
			if scan.Str(t, "kind") == "Service" && s.hasServicesIn(n) && s.m.Find("Service", n, scan.Str(t, "name")) == nil {
				return fmt.Sprintf("targets Service %s, which does not exist in namespace %s", scan.Str(t, "name"), n)
			}
		}
	} else if a.selector != nil && len(sel) == 0 {
		known := len(s.m.WorkloadsIn(n)) > 0
		if n == s.root {
			known = len(s.m.Workloads()) > 0
		}
		if known {
			return "selects no workload (no pod template carries its selector labels)"
		}
	}
	for _, r := range a.rules {
		for _, f := range scan.List(r, "from") {
			src := scan.Map(f, "source")
			for _, ns := range append(scan.Strings(src, "namespaces"), scan.Strings(src, "notNamespaces")...) {
				if missing, u := s.namespaceMissing(ns); !strings.Contains(ns, "*") && missing {
					*unverified = u
					return fmt.Sprintf("names namespace %q, which %s", ns, doesNotExist(u))
				}
			}
			for _, p := range append(scan.Strings(src, "principals"), scan.Strings(src, "notPrincipals")...) {
				if msg := s.principalMissing(p, unverified); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

func (s *state) hasServicesIn(n string) bool {
	for _, svc := range s.m.Services() {
		if svc.Object.Namespace == n {
			return true
		}
	}
	return false
}

// principalMissing checks "<td>/ns/<ns>/sa/<sa>" against the input.
func (s *state) principalMissing(p string, unverified *string) string {
	if strings.Contains(p, "*") {
		return ""
	}
	parts := strings.Split(p, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return ""
	}
	ns, sa := parts[2], parts[4]
	if missing, u := s.namespaceMissing(ns); missing {
		*unverified = u
		return fmt.Sprintf("names principal %q in namespace %s, which %s", p, ns, doesNotExist(u))
	}
	accounts := map[string]bool{"default": true}
	known := false
	for _, o := range s.m.Kind("ServiceAccount") {
		if o.Namespace == ns {
			accounts[o.Name], known = true, true
		}
	}
	// Only declared ServiceAccounts make the list authoritative; workloads
	// show some accounts in use, not all that exist.
	for _, w := range s.m.WorkloadsIn(ns) {
		if known {
			accounts[w.ServiceAccount] = true
		}
	}
	if known && !accounts[sa] {
		return fmt.Sprintf("names principal %q, but no service account %s exists in namespace %s", p, sa, ns)
	}
	return ""
}

var l7Fields = []string{"methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"}

func hasL7(a *authzPolicy) (bool, []int) {
	l7 := false
	var ports []int
	for _, r := range a.rules {
		for _, t := range scan.List(r, "to") {
			op := scan.Map(t, "operation")
			for _, f := range l7Fields {
				if len(scan.List(op, f)) > 0 {
					l7 = true
				}
			}
			for _, p := range scan.Strings(op, "ports") {
				if n, err := strconv.Atoi(p); err == nil {
					ports = append(ports, n)
				}
			}
		}
		for _, f := range scan.List(r, "from") {
			if len(scan.List(scan.Map(f, "source"), "requestPrincipals")) > 0 {
				l7 = true
			}
		}
		for _, w := range scan.List(r, "when") {
			if k := scan.Str(w, "key"); strings.HasPrefix(k, "request.") {
				l7 = true
			}
		}
	}
	return l7, ports
}

func (s *state) l7Unenforceable(a *authzPolicy, sel []*scan.Workload) string {
	l7, ports := hasL7(a)
	if !l7 {
		return ""
	}
	n := a.obj.Namespace
	if s.ambient[n] && len(a.targetRefs) == 0 {
		if nsObj := s.m.Namespace(n); nsObj != nil && nsObj.Labels[labelUseWaypoint] == "" {
			waypoint := false
			for _, w := range sel {
				if w.PodLabels[labelUseWaypoint] != "" {
					waypoint = true
				}
			}
			if !waypoint {
				return "matches HTTP attributes in ambient namespace " + n + ", which has no waypoint: ztunnel only sees L4, so these rules are never enforced as written"
			}
		}
	}
	for _, port := range ports {
		for _, svc := range s.m.Services() {
			if svc.Object.Namespace != n {
				continue
			}
			selectsAny := len(sel) == 0
			for _, w := range sel {
				if len(svc.Selector) > 0 && scan.MatchLabels(svc.Selector, w.PodLabels) {
					selectsAny = true
				}
			}
			if !selectsAny {
				continue
			}
			for _, sp := range svc.Ports {
				if (sp.Port == port || sp.TargetPort == strconv.Itoa(port)) && tcpPort(sp) {
					return fmt.Sprintf("matches HTTP attributes on port %d, which Service %s declares as TCP (%s): Istio cannot see requests there, so the rules do not apply as written", port, svc.Object.Name, orDefault(sp.AppProtocol, sp.Name))
				}
			}
		}
	}
	return ""
}

func tcpPort(sp scan.ServicePort) bool {
	proto := strings.ToLower(sp.AppProtocol)
	if proto == "" {
		proto = strings.ToLower(sp.Name)
		if i := strings.IndexByte(proto, '-'); i >= 0 {
			proto = proto[:i]
		}
	}
	switch proto {
	case "tcp", "mongo", "mysql", "redis", "tls", "postgres", "postgresql", "kafka":
		return true
	}
	return false
}

package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/scan"
	linkerdstate "meshward.dev/meshward/internal/scan/rules/linkerd"
)

const (
	apiLinkerdPolicy = "policy.linkerd.io"
	annSkipInbound   = "config.linkerd.io/skip-inbound-ports"
)

// linkerdServer is a Server that selects the workload being translated.
type linkerdServer struct {
	obj  *scan.Object
	port int // 0: a named port the input cannot resolve
}

// linkerd translates Servers and their authorizations; it reports whether
// the input had any Linkerd policy.
func (im *importer) linkerd() bool {
	servers := im.m.KindAPI("Server", apiLinkerdPolicy)
	if len(servers) == 0 && len(im.m.KindAPI("AuthorizationPolicy", apiLinkerdPolicy)) == 0 && len(im.m.KindAPI("ServerAuthorization", apiLinkerdPolicy)) == 0 {
		return false
	}
	ltd := linkerdstate.IdentityTrustDomain(im.m)
	used := map[*scan.Object]bool{}
	for _, w := range im.m.Workloads() {
		if in, known := linkerdstate.Meshed(im.m, w); !in && known {
			im.note(Narrowed, w.Object, "", "not in the Linkerd mesh: no proxy, Linkerd enforced nothing here",
				"no AccessPolicy written: meshward denies every call to it until one allows it")
			continue
		}
		var mine []linkerdServer
		for _, s := range servers {
			if s.Namespace != w.Object.Namespace || !scan.MatchSelector(s.Map("spec.podSelector"), w.PodLabels) {
				continue
			}
			used[s] = true
			ls := linkerdServer{obj: s}
			if n, err := strconv.Atoi(s.Str("spec.port")); err == nil && n > 0 && n < 65536 {
				ls.port = n
			} else {
				im.note(Narrowed, s, "spec.port", fmt.Sprintf("named port %q: the input does not say which number it is", s.Str("spec.port")),
					"its authorizations are dropped, and no default applies to the workload's other ports")
			}
			mine = append(mine, ls)
		}
		t := im.target(w.Object, w.Object.Namespace, w.Object.Name)
		if t == nil {
			continue
		}
		t.port = workloadPort(w)
		if skip := w.PodAnnotations[annSkipInbound]; skip != "" {
			im.note(Narrowed, w.Object, "", "skip-inbound-ports "+skip+": traffic on them bypassed the proxy (no mTLS, no policy)",
				"meshward's sidecar decides every port: calls to them need an allow")
		}
		im.linkerdWorkload(t, w, mine, ltd)
	}
	for _, s := range servers {
		if !used[s] {
			im.note(Info, s, "spec.podSelector", "selects no meshed workload in the input", "not translated: it applies to nothing")
		}
	}
	return true
}

func (im *importer) linkerdWorkload(t *target, w *scan.Workload, servers []linkerdServer, ltd string) {
	var ports []int
	named := false
	for _, s := range servers {
		t.addOrigin(s.obj)
		if s.port == 0 {
			named = true
			continue
		}
		ports = append(ports, s.port)
		for _, r := range im.linkerdAuthorizations(s, ltd, t.namespace) {
			r.to = []operation{{Ports: []int{s.port}}}
			t.addRule(r)
		}
		if ap := s.obj.Str("spec.accessPolicy"); ap != "" && ap != "deny" {
			if r := im.linkerdDefault(s.obj, "spec.accessPolicy", ap, s.obj.Name+"-access"); r != nil {
				r.to = []operation{{Ports: []int{s.port}}}
				t.addRule(r)
			}
		}
	}
	dp, by := linkerdstate.DefaultPolicy(im.m, w)
	if dp == "deny" || named {
		return
	}
	o, field := by, "metadata.annotations"
	if by != nil && by.Kind == "ConfigMap" {
		field = "data.values"
	}
	if by == nil {
		o, field = w.Object, ""
	}
	r := im.linkerdDefault(o, field, dp, "linkerd-default-"+dp)
	if r == nil {
		return
	}
	if by == nil {
		im.noteOnce(Info, w.Object, "", "no default inbound policy in the input: Linkerd's default all-unauthenticated applies to ports without a Server",
			"kept for those ports as {namespace: \"*\"} (mesh callers only): narrow it")
	}
	if len(ports) > 0 {
		r.when = append(r.when, not("destination.port in "+intList(ports)))
	}
	t.addRule(r)
}

// linkerdDefault is the rule of a default (or Server access) policy.
func (im *importer) linkerdDefault(o *scan.Object, field, policy, name string) *rule {
	switch policy {
	case "all-authenticated", "cluster-authenticated":
		if policy == "cluster-authenticated" {
			im.noteOnce(Info, o, field, "cluster-authenticated: meshed clients from the cluster's networks", "translated as {namespace: \"*\"}: every workload of the trust domain")
		}
	case "all-unauthenticated", "cluster-unauthenticated", "audit":
		im.noteOnce(Narrowed, o, field, policy+": clients without a mesh identity (plaintext) are allowed",
			"translated as {namespace: \"*\"}: only workloads of the trust domain, over mTLS")
	default:
		im.noteOnce(Narrowed, o, field, fmt.Sprintf("unknown default policy %q", policy), "read as deny")
		return nil
	}
	return &rule{name: name, from: []source{{Namespace: "*"}}, origin: o.Ref().String()}
}

// linkerdAuthorizations are the rules of the AuthorizationPolicies and
// ServerAuthorizations that target s.
func (im *importer) linkerdAuthorizations(s linkerdServer, ltd, ns string) []*rule {
	var out []*rule
	for _, ap := range im.m.KindAPI("AuthorizationPolicy", apiLinkerdPolicy) {
		if ap.Namespace != s.obj.Namespace {
			continue
		}
		kind, name := ap.Str("spec.targetRef.kind"), ap.Str("spec.targetRef.name")
		switch {
		case kind == "Server" && name == s.obj.Name, kind == "Namespace" && name == ap.Namespace:
		case kind == "HTTPRoute" || kind == "GRPCRoute":
			im.noteOnce(Narrowed, ap, "spec.targetRef", "an AuthorizationPolicy on an "+kind+" is not translated yet",
				"dropped: the route's requests get no allow from it")
			continue
		default:
			continue
		}
		from, ok := im.linkerdRefs(ap, ltd, ns)
		if ok {
			out = append(out, &rule{name: ap.Name, from: from, origin: ap.Ref().String()})
		}
	}
	for _, sa := range im.m.KindAPI("ServerAuthorization", apiLinkerdPolicy) {
		if sa.Namespace != s.obj.Namespace {
			continue
		}
		if n := sa.Str("spec.server.name"); n != s.obj.Name && (n != "" || !scan.MatchSelector(sa.Map("spec.server.selector"), s.obj.Labels)) {
			continue
		}
		from, ok := im.linkerdClient(sa, ltd, ns)
		if ok {
			out = append(out, &rule{name: sa.Name, from: from, origin: sa.Ref().String()})
		}
	}
	return out
}

// linkerdRefs reads requiredAuthenticationRefs: every one must hold.
func (im *importer) linkerdRefs(ap *scan.Object, ltd, ns string) ([]source, bool) {
	refs := ap.List("spec.requiredAuthenticationRefs")
	if len(refs) == 0 {
		im.note(Narrowed, ap, "spec.requiredAuthenticationRefs", "no required authentication: any client, plaintext too",
			"translated as {namespace: \"*\"}: only workloads of the trust domain, over mTLS")
		return []source{{Namespace: "*"}}, true
	}
	if len(refs) > 1 {
		im.note(Narrowed, ap, "spec.requiredAuthenticationRefs", "several required authentications (all must hold)",
			"not translated: the policy allows nothing")
		return nil, false
	}
	ref := refs[0]
	rns := nsOr(scan.Str(ref, "namespace"), ap.Namespace)
	switch scan.Str(ref, "kind") {
	case "MeshTLSAuthentication":
		mt := im.m.Find("MeshTLSAuthentication", rns, scan.Str(ref, "name"))
		if mt == nil {
			im.note(Info, ap, "spec.requiredAuthenticationRefs", "MeshTLSAuthentication "+rns+"/"+scan.Str(ref, "name")+" is not in the input",
				"not translated: Linkerd allows nothing with a missing reference")
			return nil, false
		}
		var from []source
		for _, id := range scan.Strings(mt.Body, "spec.identities") {
			if src, ok := im.linkerdIdentity(mt, id, ltd, ns); ok {
				from = append(from, src)
			}
		}
		for _, r := range mt.List("spec.identityRefs") {
			n, rn := scan.Str(r, "name"), nsOr(scan.Str(r, "namespace"), mt.Namespace)
			switch scan.Str(r, "kind") {
			case "ServiceAccount":
				from = append(from, im.serviceSource(rn, n, ns))
			case "Namespace":
				from = append(from, source{Namespace: n})
			default:
				im.note(Narrowed, mt, "spec.identityRefs", "identity reference of kind "+scan.Str(r, "kind")+" is not translated", "dropped")
			}
		}
		var ok []source
		for _, f := range from {
			if f != (source{}) {
				ok = append(ok, f)
			}
		}
		return ok, len(ok) > 0
	case "ServiceAccount":
		return []source{im.serviceSource(rns, scan.Str(ref, "name"), ns)}, true
	case "NetworkAuthentication":
		im.note(Narrowed, ap, "spec.requiredAuthenticationRefs", "NetworkAuthentication (client IP networks) cannot be translated: meshward authorizes by SPIFFE identity only",
			"not translated: the callers it names get no allow from it")
		return nil, false
	}
	im.note(Narrowed, ap, "spec.requiredAuthenticationRefs", "authentication of kind "+scan.Str(ref, "kind")+" is not translated", "not translated")
	return nil, false
}

// linkerdClient reads a ServerAuthorization's client.
func (im *importer) linkerdClient(sa *scan.Object, ltd, ns string) ([]source, bool) {
	if nets := sa.List("spec.client.networks"); len(nets) > 0 {
		im.note(Narrowed, sa, "spec.client.networks", "client networks cannot be translated: meshward authorizes by SPIFFE identity only",
			"not translated: the callers it names get no allow from it")
		return nil, false
	}
	if un, _ := scan.Bool(sa.Body, "spec.client.unauthenticated"); un {
		im.note(Narrowed, sa, "spec.client.unauthenticated", "unauthenticated clients (plaintext) are allowed",
			"translated as {namespace: \"*\"}: only workloads of the trust domain, over mTLS")
		return []source{{Namespace: "*"}}, true
	}
	if un, _ := scan.Bool(sa.Body, "spec.client.meshTLS.unauthenticatedTLS"); un {
		im.note(Narrowed, sa, "spec.client.meshTLS.unauthenticatedTLS", "TLS clients without a mesh identity are allowed",
			"translated as {namespace: \"*\"}: only workloads of the trust domain")
		return []source{{Namespace: "*"}}, true
	}
	var from []source
	for _, id := range scan.Strings(sa.Body, "spec.client.meshTLS.identities") {
		if src, ok := im.linkerdIdentity(sa, id, ltd, ns); ok {
			from = append(from, src)
		}
	}
	for _, r := range sa.List("spec.client.meshTLS.serviceAccounts") {
		if src := im.serviceSource(nsOr(scan.Str(r, "namespace"), sa.Namespace), scan.Str(r, "name"), ns); src != (source{}) {
			from = append(from, src)
		}
	}
	if len(from) == 0 {
		im.note(Info, sa, "spec.client", "names no client meshward can express", "not translated: it allows nothing")
	}
	return from, len(from) > 0
}

// linkerdIdentity maps a Linkerd identity (S.N.serviceaccount.identity.
// linkerd.<td>, or "*", or "*.N.serviceaccount...").
func (im *importer) linkerdIdentity(o *scan.Object, id, ltd, ns string) (source, bool) {
	if id == "*" {
		return source{Namespace: "*"}, true
	}
	suffix := ".serviceaccount.identity.linkerd." + ltd
	if rest, ok := strings.CutSuffix(id, suffix); ok {
		sa, n, ok := strings.Cut(rest, ".")
		if ok && !strings.Contains(n, ".") {
			if sa == "*" {
				return source{Namespace: n}, true
			}
			if src := im.serviceSource(n, sa, ns); src != (source{}) {
				return src, true
			}
		}
	}
	im.note(Narrowed, o, "", fmt.Sprintf("identity %q is not a Linkerd service account identity of trust domain %s", id, ltd), "dropped")
	return source{}, false
}

// serviceSource is the source for service account sa of namespace n, seen
// from a policy of namespace ns; zero when the names are not valid.
func (im *importer) serviceSource(n, sa, ns string) source {
	id := im.probeID(n, sa)
	switch {
	case id == "":
		return source{}
	case n == ns:
		return source{Service: sa}
	}
	return source{Identity: id}
}

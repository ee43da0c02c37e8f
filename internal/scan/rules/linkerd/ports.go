package linkerd

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

var rulePortNoServer = scan.Rule{
	ID: "MW-LINKERD-013", Category: scan.CatLinkerdDefaultOpen, Severity: scan.SeverityHigh, Mesh: scan.MeshLinkerd,
	Title:       "meshed port without a Server falls back to an open default",
	Description: "A meshed workload has Servers for some of its container ports but not for others, and its default inbound policy (workload, namespace or cluster) is open: the ports without a Server accept connections from callers that the Servers' authorizations would refuse.",
	Remediation: "Give every container port a Server (with its authorizations), or close the default for the workload:\n  metadata:\n    annotations:\n      config.linkerd.io/default-inbound-policy: deny",
}

// checkPortsWithoutServer reports meshed workloads whose ports are partly
// covered by Servers, where the rest fall back to an open default.
func checkPortsWithoutServer(m *scan.Model) []scan.Finding {
	s := get(m)
	var out []scan.Finding
	for _, w := range m.Workloads() {
		o := w.Object
		if s.meshed(w) != 1 || controlPlaneComponent(w) {
			continue
		}
		covered, named, selected := serverPorts(m, w)
		if !selected || named {
			continue // no Server at all (the default rules judge it), or a named port we cannot map
		}
		dp, level := s.effectiveDefault(w)
		if !openPolicies[dp] || level == "workload" {
			continue // closed, or MW-LINKERD-003 reports the workload's own open default
		}
		skipped := skippedPorts(w.PodAnnotations[annSkipInbound])
		var open []int
		seen := map[int]bool{}
		for _, c := range w.Containers {
			for _, p := range c.Ports {
				if !covered[p] && !skipped[p] && !seen[p] {
					seen[p] = true
					open = append(open, p)
				}
			}
		}
		if len(open) == 0 {
			continue
		}
		sort.Ints(open)
		ports := make([]string, len(open))
		for i, p := range open {
			ports[i] = strconv.Itoa(p)
		}
		msg := fmt.Sprintf("%s %s/%s has Servers for some ports but none for %s, so those fall back to the %s default %s and accept connections from %s: add a Server for each, or annotate the pod template with config.linkerd.io/default-inbound-policy: deny.", o.Kind, o.Namespace, o.Name, strings.Join(ports, ", "), level, dp, who(dp))
		f := rulePortNoServer.Finding(o, "spec.template.spec.containers", msg)
		if level == "cluster (unverified)" {
			f.Severity = scan.SeverityLow
			f.Message = fmt.Sprintf("%s %s/%s has Servers for some ports but none for %s, so those fall back to the cluster default inbound policy: add a Server for each, or annotate the pod template with config.linkerd.io/default-inbound-policy: deny. Unverified: the cluster default (linkerd-config) is not in the input; Linkerd installs all-unauthenticated unless told otherwise.", o.Kind, o.Namespace, o.Name, strings.Join(ports, ", "))
		}
		out = append(out, f)
	}
	return out
}

// serverPorts returns the numeric ports of the Servers selecting w, whether
// one of them names its port, and whether any selects w.
func serverPorts(m *scan.Model, w *scan.Workload) (ports map[int]bool, named, selected bool) {
	ports = map[int]bool{}
	for _, o := range m.KindAPI("Server", "policy.linkerd.io") {
		if o.Namespace != w.Object.Namespace || !scan.MatchSelector(o.Map("spec.podSelector"), w.PodLabels) {
			continue
		}
		selected = true
		p, err := strconv.Atoi(o.Str("spec.port"))
		if err != nil {
			named = true
			continue
		}
		ports[p] = true
	}
	return ports, named, selected
}

// effectiveDefault is the default inbound policy governing w and the level
// that sets it; the cluster's is Linkerd's all-unauthenticated when the
// input has no linkerd-config.
func (s *state) effectiveDefault(w *scan.Workload) (policy, level string) {
	if dp := w.PodAnnotations[annDefaultPolicy]; dp != "" {
		return dp, "workload"
	}
	if dp := nsAnn(s.m.Namespace(w.Object.Namespace), annDefaultPolicy); dp != "" {
		return dp, "namespace"
	}
	if s.clusterDP != "" {
		return s.clusterDP, "cluster"
	}
	return "all-unauthenticated", "cluster (unverified)"
}

// skippedPorts parses a skip-inbound-ports annotation ("25,587,8000-8010").
func skippedPorts(v string) map[int]bool {
	out := map[int]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 65535 {
				continue
			}
		}
		for p := a; p <= b; p++ {
			out[p] = true
		}
	}
	return out
}

package meshward

import (
	"fmt"
	"time"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/scan"
)

const api = "meshward.dev/"

var (
	rulePermissive = scan.Rule{
		ID: "MW-MESHWARD-001", Category: scan.CatMTLSPermissive, Severity: scan.SeverityHigh, Mesh: scan.MeshMeshward,
		Title:       "MeshConfig mTLS is permissive",
		Description: "MeshConfig spec.mtls is permissive: it asks sidecars to accept callers without an identity, over plaintext, until spec.permissiveUntil. Sidecars of this release still refuse plaintext (docs/configuration.md, \"Not enforced yet\"), so nothing is open today; the file declares a hole that opens once permissive migration is honoured.",
		Remediation: "In the MeshConfig:\n  spec:\n    mtls: strict",
	}
	ruleDisabled = scan.Rule{
		ID: "MW-MESHWARD-002", Category: scan.CatMTLSDisabled, Severity: scan.SeverityCritical, Mesh: scan.MeshMeshward,
		Title:       "MeshConfig mTLS is disabled",
		Description: "MeshConfig spec.mtls turns mutual TLS off: traffic is plaintext and has no identity.",
		Remediation: "In the MeshConfig:\n  spec:\n    mtls: strict",
	}
	ruleDefaultAllow = scan.Rule{
		ID: "MW-MESHWARD-003", Category: scan.CatAuthzMissing, Severity: scan.SeverityHigh, Mesh: scan.MeshMeshward,
		Title:       "MeshConfig default action is allow",
		Description: "MeshConfig spec.defaultAction is allow: every service without an AccessPolicy accepts calls from every identity in the mesh.",
		Remediation: "In the MeshConfig:\n  spec:\n    defaultAction: deny\nand write an AccessPolicy per service.",
	}
	rulePathNorm = scan.Rule{
		ID: "MW-MESHWARD-004", Category: scan.CatAuthzPathNormalization, Severity: scan.SeverityMedium, Mesh: scan.MeshMeshward,
		Title:       "MeshConfig path normalization is not strict",
		Description: "MeshConfig spec.pathNormalization is not strict: encoded or duplicated-slash variants of a path can slip past path rules.",
		Remediation: "In the MeshConfig:\n  spec:\n    pathNormalization: strict",
	}
	ruleAudit = scan.Rule{
		ID: "MW-MESHWARD-005", Category: scan.CatAuthzDryRunOnly, Severity: scan.SeverityMedium, Mesh: scan.MeshMeshward,
		Title:       "AccessPolicy is in audit mode",
		Description: "An AccessPolicy with mode: audit only logs what it would deny: its target admits every caller.",
		Remediation: "Once the audit log looks right:\n  spec:\n    mode: enforce",
	}
	ruleAllowAll = scan.Rule{
		ID: "MW-MESHWARD-006", Category: scan.CatAuthzAllowAll, Severity: scan.SeverityHigh, Mesh: scan.MeshMeshward,
		Title:       "AccessPolicy rule admits every caller",
		Description: "An AccessPolicy rule has no from entries: every identity in the mesh matches it.",
		Remediation: "Name the callers:\n  rules:\n  - name: frontend\n    from: [{service: frontend}]",
	}
	ruleTTL = scan.Rule{
		ID: "MW-MESHWARD-007", Category: scan.CatCertLongLived, Severity: scan.SeverityMedium, Mesh: scan.MeshMeshward,
		Title:       "workload certificate TTL above 30 days",
		Description: "MeshConfig spec.certificates.workloadTTL above 720h lets a stolen workload certificate be used for weeks (default 1h).",
		Remediation: "In the MeshConfig:\n  spec:\n    certificates:\n      workloadTTL: 1h",
	}
	ruleIneffective = scan.Rule{
		ID: "MW-MESHWARD-008", Category: scan.CatAuthzIneffective, Severity: scan.SeverityMedium, Mesh: scan.MeshMeshward,
		Title:       "AccessPolicy targets or names a service that does not exist",
		Description: "An AccessPolicy's target, or a service in its from list, is not a service of the Mesh: the policy protects nothing.",
		Remediation: "Fix spec.target (and from[].service) to name services listed in mesh.yaml.",
	}
)

func check(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	for _, o := range m.KindAPI("MeshConfig", api) {
		// What is weak is policy's to decide (the linter uses the same
		// predicates); the scanner applies them to manifests as written,
		// which Compile may reject.
		switch mtls := o.Str("spec.mtls"); {
		case policy.PermissiveMTLS(mtls):
			out = append(out, rulePermissive.Finding(o, "spec.mtls", fmt.Sprintf("MeshConfig %s sets mtls: permissive: every sidecar accepts plaintext from callers without an identity.", o.Name)))
		case policy.DisabledMTLS(mtls):
			out = append(out, ruleDisabled.Finding(o, "spec.mtls", fmt.Sprintf("MeshConfig %s turns mTLS off: traffic is plaintext, without identity.", o.Name)))
		}
		if policy.DefaultAllow(o.Str("spec.defaultAction")) {
			out = append(out, ruleDefaultAllow.Finding(o, "spec.defaultAction", fmt.Sprintf("MeshConfig %s sets defaultAction: allow: every service without a policy accepts every caller in the mesh.", o.Name)))
		}
		if pn := o.Str("spec.pathNormalization"); policy.WeakPathNormalization(pn) {
			out = append(out, rulePathNorm.Finding(o, "spec.pathNormalization", fmt.Sprintf("MeshConfig %s sets pathNormalization: %s: path rules can be bypassed with encoded paths.", o.Name, pn)))
		}
		if ttl := o.Str("spec.certificates.workloadTTL"); ttl != "" {
			if d, err := time.ParseDuration(ttl); err == nil && policy.LongLivedWorkloadTTL(d) {
				out = append(out, ruleTTL.Finding(o, "spec.certificates.workloadTTL", fmt.Sprintf("MeshConfig %s issues workload certificates for %s.", o.Name, ttl)))
			}
		}
	}
	services := map[string]bool{}
	for _, o := range m.KindAPI("Mesh", api) {
		for _, s := range o.List("spec.services") {
			services[scan.Str(s, "name")] = true
		}
	}
	for _, o := range m.KindAPI("AccessPolicy", api) {
		if policy.AuditMode(o.Str("spec.mode")) {
			out = append(out, ruleAudit.Finding(o, "spec.mode", fmt.Sprintf("AccessPolicy %s/%s is in audit mode: %s admits every caller.", o.Namespace, o.Name, o.Str("spec.target"))))
		}
		for i, r := range o.List("spec.rules") {
			if len(scan.List(r, "from")) == 0 {
				out = append(out, ruleAllowAll.Finding(o, fmt.Sprintf("spec.rules.%d", i), fmt.Sprintf("AccessPolicy %s/%s rule %q has no from: every identity in the mesh may call %s.", o.Namespace, o.Name, scan.Str(r, "name"), o.Str("spec.target"))))
				break
			}
		}
		if len(services) > 0 {
			if t := o.Str("spec.target"); t != "" && !services[t] {
				out = append(out, ruleIneffective.Finding(o, "spec.target", fmt.Sprintf("AccessPolicy %s/%s targets %s, which is not a service of the mesh: it protects nothing.", o.Namespace, o.Name, t)))
			}
		}
	}
	return out
}

// Rules returns the meshward rules.
func Rules() []scan.Rule {
	fam := scan.NewFamily(check)
	return []scan.Rule{
		fam.Rule(rulePermissive), fam.Rule(ruleDisabled), fam.Rule(ruleDefaultAllow), fam.Rule(rulePathNorm),
		fam.Rule(ruleAudit), fam.Rule(ruleAllowAll), fam.Rule(ruleTTL), fam.Rule(ruleIneffective),
	}
}

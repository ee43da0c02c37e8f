package scan

import "fmt"

// Categories: the fixed vocabulary of ../shared/SCANNER.md.
const (
	CatMTLSDisabled           = "mtls-disabled"
	CatMTLSPermissive         = "mtls-permissive"
	CatMTLSNotEnforcedClient  = "mtls-not-enforced-client"
	CatAuthzMissing           = "authz-missing"
	CatAuthzAllowAll          = "authz-allow-all"
	CatAuthzUnauthenticated   = "authz-unauthenticated-principal"
	CatAuthzPathNormalization = "authz-path-normalization"
	CatAuthzDryRunOnly        = "authz-dry-run-only"
	CatEgressUnrestricted     = "egress-unrestricted"
	CatIngressPassthrough     = "ingress-passthrough-no-auth" //nolint:gosec // G101: a finding category name, not a credential
	CatCertExpired            = "cert-expired"
	CatCertExpiringSoon       = "cert-expiring-soon"
	CatCertLongLived          = "cert-long-lived"
	CatCertWeakKey            = "cert-weak-key"
	CatCertWeakSignature      = "cert-weak-signature"
	CatCAKeyExposed           = "ca-key-exposed"
	CatTrustDomainDefault     = "trust-domain-default"
	CatInjectionDisabled      = "injection-disabled"
	CatPortExcluded           = "port-excluded"
	CatConsulIntentionsAllow  = "consul-intentions-default-allow"
	CatConsulACLAllow         = "consul-acl-default-allow"
	CatConsulTLSVerifyOff     = "consul-tls-verify-off"
	CatLinkerdDefaultOpen     = "linkerd-default-policy-open"
	CatAuthzIneffective       = "authz-ineffective"
)

// Categories lists the vocabulary in the order of SCANNER.md.
var Categories = []string{
	CatMTLSDisabled, CatMTLSPermissive, CatMTLSNotEnforcedClient, CatAuthzMissing,
	CatAuthzAllowAll, CatAuthzUnauthenticated, CatAuthzPathNormalization, CatAuthzDryRunOnly,
	CatEgressUnrestricted, CatIngressPassthrough, CatCertExpired, CatCertExpiringSoon,
	CatCertLongLived, CatCertWeakKey, CatCertWeakSignature, CatCAKeyExposed,
	CatTrustDomainDefault, CatInjectionDisabled, CatPortExcluded, CatConsulIntentionsAllow,
	CatConsulACLAllow, CatConsulTLSVerifyOff, CatLinkerdDefaultOpen, CatAuthzIneffective,
}

// Meshes a rule or finding belongs to.
const (
	MeshIstio    = "istio"
	MeshLinkerd  = "linkerd"
	MeshConsul   = "consul"
	MeshMeshward = "meshward"
	MeshAny      = "any" // certificate rules apply to every mesh's PEM material
)

// Rule is one check with a stable ID. Check is a pure function of the
// model; it returns findings built with Rule.Finding.
type Rule struct {
	ID          string   `json:"id"`
	Category    string   `json:"category"`
	Severity    Severity `json:"severity"`
	Mesh        string   `json:"mesh"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Remediation string   `json:"remediation"`

	Check func(m *Model) []Finding `json:"-"`
}

// Finding builds a finding of this rule on obj. The message says what is
// exposed and to whom; the rule's remediation is used unless one is given.
func (r *Rule) Finding(obj *Object, field, msg string, remediation ...string) Finding {
	f := r.FindingAt(obj.Ref(), obj.File, obj.LineOf(field), msg, remediation...)
	if obj.Lines == nil && obj.Line == 0 {
		f.Line = 0
	}
	return f
}

// FindingAt builds a finding on an object that may be absent from the input
// (a Namespace anchoring a missing policy).
func (r *Rule) FindingAt(ref Ref, file string, line int, msg string, remediation ...string) Finding {
	rem := r.Remediation
	if len(remediation) > 0 && remediation[0] != "" {
		rem = remediation[0]
	}
	return Finding{
		Rule: r.ID, Category: r.Category, Severity: r.Severity, Mesh: r.Mesh,
		Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name,
		File: file, Line: line, Message: msg, Remediation: rem,
	}
}

// Validate checks that the rule is complete and uses a known category.
func (r *Rule) Validate() error {
	if r.ID == "" || r.Title == "" || r.Remediation == "" || r.Check == nil {
		return fmt.Errorf("rule %q: id, title, remediation and check are required", r.ID)
	}
	for _, c := range Categories {
		if c == r.Category {
			return nil
		}
	}
	return fmt.Errorf("rule %s: category %q is not in the vocabulary", r.ID, r.Category)
}

package istio

import "meshward.dev/meshward/internal/scan"

// Rules returns the Istio rules.
func Rules() []scan.Rule {
	withCheck := scan.FromFamily
	return []scan.Rule{
		withCheck(rulePermissive, checkPeerAuth),
		withCheck(ruleDisabled, checkPeerAuth),
		withCheck(ruleNoPeerAuth, checkPeerAuth),
		withCheck(ruleDRPlaintext, checkDestinationRules),
		withCheck(ruleAuthzMissing, checkAuthzMissing),
		withCheck(ruleAllowAll, checkAuthzPolicies),
		withCheck(ruleUnauthPrincipal, checkAuthzPolicies),
		withCheck(rulePathNorm, checkAuthzPolicies),
		withCheck(ruleDryRun, checkAuthzPolicies),
		withCheck(ruleEgressMesh, checkEgress),
		withCheck(ruleEgressSidecar, checkEgress),
		withCheck(ruleIngressPassthrough, checkGateways),
		withCheck(ruleTrustDomain, checkTrustDomain),
		withCheck(ruleInjection, checkWorkloads),
		withCheck(rulePortExcluded, checkWorkloads),
		withCheck(ruleProxyUID, checkWorkloads),
		withCheck(ruleIneffective, checkAuthzPolicies),
		withCheck(ruleL7Unenforceable, checkAuthzPolicies),
		withCheck(ruleDRNoVerify, checkDestinationRules),
		withCheck(ruleJWTNotRequired, checkRequestAuthn),
	}
}

package istio

import "meshward.dev/meshward/internal/scan"

// Rules returns the Istio rules.
func Rules() []scan.Rule {
	var (
		peerAuth         = scan.NewFamily(checkPeerAuth)
		destinationRules = scan.NewFamily(checkDestinationRules)
		authzMissing     = scan.NewFamily(checkAuthzMissing)
		authzPolicies    = scan.NewFamily(checkAuthzPolicies)
		egress           = scan.NewFamily(checkEgress)
		gateways         = scan.NewFamily(checkGateways)
		trustDomain      = scan.NewFamily(checkTrustDomain)
		workloads        = scan.NewFamily(checkWorkloads)
		requestAuthn     = scan.NewFamily(checkRequestAuthn)
		credentials      = scan.NewFamily(checkGatewayCredentials)
	)
	return []scan.Rule{
		peerAuth.Rule(rulePermissive),
		peerAuth.Rule(ruleDisabled),
		peerAuth.Rule(ruleNoPeerAuth),
		destinationRules.Rule(ruleDRPlaintext),
		authzMissing.Rule(ruleAuthzMissing),
		authzPolicies.Rule(ruleAllowAll),
		authzPolicies.Rule(ruleUnauthPrincipal),
		authzPolicies.Rule(rulePathNorm),
		authzPolicies.Rule(ruleDryRun),
		egress.Rule(ruleEgressMesh),
		egress.Rule(ruleEgressSidecar),
		gateways.Rule(ruleIngressPassthrough),
		trustDomain.Rule(ruleTrustDomain),
		workloads.Rule(ruleInjection),
		workloads.Rule(rulePortExcluded),
		workloads.Rule(ruleProxyUID),
		authzPolicies.Rule(ruleIneffective),
		authzPolicies.Rule(ruleL7Unenforceable),
		destinationRules.Rule(ruleDRNoVerify),
		requestAuthn.Rule(ruleJWTNotRequired),
		authzPolicies.Rule(ruleGatewaySelector),
		credentials.Rule(ruleGatewayCredential),
	}
}

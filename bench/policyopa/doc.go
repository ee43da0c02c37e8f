// Package policyopa benchmarks meshward's compiled policy engine against
// the same policy written in Rego and evaluated by OPA's Go module (a
// prepared query), on the same generated set (1,000 policies x 10 rules,
// L7 with ports, methods, exact and prefix paths and a header) and the same
// requests. It is its own module so that OPA stays out of meshward's.
//
// Run it with bench/policy.sh.
package policyopa

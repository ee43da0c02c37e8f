// Package policytest runs PolicyTest documents against the same compiled
// policy.Engine the sidecar enforces with, so what is tested is what is
// enforced. A case's path goes through the engine's NormalizePath first: a
// path the sidecar would reject with 400 is a deny by the pseudo-rule
// "invalid-path". A Report lists every case with the rule that decided it,
// and the rules that no case exercised (coverage); it renders as text,
// JSON or JUnit XML.
//
// It does not read directories or print on its own: callers pass a parsed
// policy.Set and its Engine.
package policytest

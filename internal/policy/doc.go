// Package policy turns meshward's policy files into one compiled, immutable
// Engine that the sidecar queries per connection (L4) and per request (L7),
// and that `meshward policy test` runs too, so what is tested is what is
// enforced.
//
// Loading and compiling:
//
//	files, err := policy.ReadDir("policies")            // []policy.File{Name, Data}
//	e, err := policy.Compile(files, policy.Options{})
//	set, err := policy.Parse(files, opts); e, err := set.Compile() // keep the Set for Lint/policytest
//
// Errors are a config.ErrorList naming file, line and field for every
// problem; a set with any error is rejected whole. The control plane pushes
// the raw files and the sidecar compiles them itself with the same Compile,
// and keeps the engine in force when an update does not compile.
// Engine.Version is the sha256 of the canonical form of the
// effective policy (file names, comments and formatting do not change it).
//
// Deciding:
//
//	d := e.Decide(&policy.Request{Source: peerID, Destination: policy.Destination{Service: "payments", Namespace: "default", Port: 8084},
//		HTTP: &policy.HTTPRequest{Method: r.Method, Path: normalized, Headers: r.Header}})
//
// Decide allocates nothing unless the matching rule has a CEL condition. A
// nil or empty Engine denies; a service without an AccessPolicy gets the
// MeshConfig's defaultAction (deny unless written otherwise); the first
// matching rule allows; otherwise the policy's default denies, which in
// audit mode returns Allow with WouldDeny set. Paths must be normalized with
// NormalizePath (or Engine.NormalizePath, which honours the MeshConfig's
// pathNormalization) before matching; what does not normalize is rejected
// with 400 by the sidecar.
//
// Also here: Lint (warnings about broad, shadowed and unreachable rules and
// weakened defaults) and Diff (the grants a change adds or removes).
//
// Not here: banned identities (the sidecar checks them before Decide),
// transport (mTLS), and running PolicyTests (package policytest).
package policy

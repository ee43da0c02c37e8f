// Package config reads meshward's YAML files: the envelope every document
// shares (apiVersion meshward.dev/v1, kind, metadata, spec), several
// documents per file, strict decoding in which an unknown or duplicate field
// is an error, and errors that name the file, line and field
// (policies/payments.yaml:14: spec.rules[0].to[0].methods[1]: ...). It also
// holds the Mesh kind (mesh.yaml, read by `meshward up` and
// `meshward policy lint --mesh`) with its defaults and validation.
//
// Reading a file collects every error it can instead of stopping at the
// first, and returns them as an ErrorList sorted by file and line.
//
// It does not know the policy kinds (MeshConfig, AccessPolicy, PolicyTest):
// package policy and policy/policytest decode their specs with
// Document.DecodeSpec and report their own errors with Document.Errorf.
package config

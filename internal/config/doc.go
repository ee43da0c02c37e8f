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
// It is also meshward's one reader of YAML with positions: ReadYAML splits a
// file into documents (a syntax error names the file and the line that
// broke), and DecodeTree reads a document of any kind into plain values with
// a field path → line map. The scanner (scan/manifest) reads Kubernetes YAML
// through them, so `meshward scan` and `meshward policy lint` name the same
// line for the same mistake.
//
// It does not know the policy kinds (MeshConfig, AccessPolicy, PolicyTest):
// package policy and policy/policytest decode their specs with
// Document.DecodeSpec and report their own errors with Document.Errorf.
package config

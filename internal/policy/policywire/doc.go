// Package policywire converts policy files between the domain type
// (policy.File) and the API's wire type (meshwardv1.PolicyFile): one
// function each way, used by every package that sends or receives policy
// files (control plane, CLI, sidecar, dashboard).
//
// It does not compile or validate policy; policy.Compile does.
package policywire

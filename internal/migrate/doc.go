// Package migrate translates an existing mesh's authorization (Istio
// AuthorizationPolicy and PeerAuthentication, Consul ServiceIntentions)
// into meshward policy files: a MeshConfig, one AccessPolicy per protected
// workload and PolicyTests that pin what was translated. It reads the
// scanner's objects and effective-state model (package scan and
// scan/rules/istio) and writes policy documents; it never widens access:
// a construct meshward cannot express exactly is dropped to the narrower
// side and reported as a Note.
//
// It does not read Linkerd policy yet, does not talk to a cluster (the CLI
// loads files with scan/manifest), and does not write files: the CLI does.
package migrate

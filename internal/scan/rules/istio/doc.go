// Package istio holds the scanner's Istio rules. It resolves Istio's
// effective state (injection per namespace and workload; PeerAuthentication
// precedence mesh → namespace → workload → port; AuthorizationPolicy
// ALLOW/DENY/AUDIT/CUSTOM and dry-run semantics; mesh config defaults) and
// reports each problem once, on the object to change.
package istio

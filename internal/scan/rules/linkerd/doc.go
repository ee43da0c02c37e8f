// Package linkerd holds the scanner's Linkerd rules: the default inbound
// policy at cluster, namespace and workload level (workload wins), Server,
// ServerAuthorization, AuthorizationPolicy, MeshTLSAuthentication and
// NetworkAuthentication semantics, skipped ports (opaque ports are not
// skipped) and identity issuer lifetimes.
package linkerd

// Package proxy is the sidecar data plane. Inbound, it terminates mutual TLS
// from other sidecars (TLS 1.3, X.509-SVIDs of its own trust domain), checks
// banned identities and policy per request (HTTP/1.1, HTTP/2, gRPC) or per
// connection (TCP), tells the application who called in the
// x-meshward-peer-identity header, and forwards on loopback. Outbound, it
// listens in plaintext on loopback for the application, one listener per
// upstream (and optionally an HTTP proxy port addressed by service name),
// and carries the traffic over pooled mTLS connections to the upstream's
// sidecars, verifying that each presents exactly the upstream's identity.
//
// Certificates, bundles, policy, banned identities and endpoints are swapped
// atomically while traffic flows; nothing restarts a listener. It does not
// fetch any of them itself: the caller (meshward proxy) feeds them from the
// workload client and the control plane's watch stream.
package proxy

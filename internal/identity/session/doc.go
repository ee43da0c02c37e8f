// Package session is a workload's session with the control plane. It
// bootstraps with attestation evidence (a join token, or evidence for
// another attestor), authenticating the control plane by the token's CA
// pin or by a bundle it was given; keeps the private key in memory; renews
// the SVID at half-life with jitter (retrying with backoff while the
// control plane is down, and serving the current SVID until it expires);
// follows the control plane's watch stream for bundle, policy, endpoint and
// ban updates; and reports what the workload holds (bundle roots, the root
// its SVID chains to, and the caller's fields: policy version, inbound
// address, counters, denies).
//
// It exists apart from internal/identity/svid so that talking to the
// control plane and holding what a handshake trusts are two jobs with two
// owners: a session installs every SVID and bundle it gets into an
// svid.Holder, which verifies before it publishes, and TLS reads the
// Holder, never the session. The session does not compile policy or route:
// it hands each update to its caller (the sidecar).
package session

// Package svid holds a workload's current X.509-SVID and trust bundle: the
// one value every TLS handshake, the SPIFFE Workload API and the readiness
// check read. It exists so that what a handshake trusts has one owner with
// one rule: a Holder verifies before it publishes. An SVID whose chain does
// not verify under the bundle it would be installed with (or whose key is
// not its leaf's, or whose ID is outside the trust domain) is refused, and
// the current SVID and bundle stay. Readers never lock: the SVID, the root
// it chains to and the bundle are one immutable value behind an atomic
// pointer, swapped whole.
//
// A Holder implements go-spiffe's x509svid.Source and x509bundle.Source,
// so rotation never restarts a listener. It does not fetch, renew or talk
// to the control plane; internal/identity/session does, and installs what
// it gets here.
package svid

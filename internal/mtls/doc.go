// Package mtls builds the *tls.Config values the sidecars use between each
// other: TLS 1.3 only, X.509-SVIDs on both sides, certificates and trust
// bundles read from their sources on every handshake (so a rotated SVID or a
// new root applies to the next handshake without restarting a listener), and
// an Authorizer deciding which verified SPIFFE IDs may talk.
//
// It does not pick which identity a server must have (the proxy does, per
// upstream), and it does not evaluate policy: the server side only checks
// that the caller belongs to the trust domain and hands the verified ID on.
package mtls

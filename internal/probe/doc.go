// Package probe looks at a live endpoint the way an attacker would: does it
// accept plaintext (HTTP or raw bytes), does it complete TLS without a client
// certificate, which TLS versions and cipher suites does it accept, and what
// certificate chain does it present (validity, lifetime, key, signature,
// SPIFFE ID, trust against a bundle). Run gathers those facts into a Result;
// Evaluate turns a Result into scan.Findings; WriteText and WriteJSON print
// them.
//
// It does not exploit anything, send more than a handful of small requests,
// or follow redirects. Go's crypto/tls cannot offer SSLv3 (or SSLv2), so those
// are never tested, and TLS 1.3 cipher suites cannot be offered one at a time,
// so for TLS 1.3 only the negotiated suite is reported.
package probe

package policy

import (
	"net/http"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Request is what the sidecar knows when it asks for a decision: who calls
// (the verified peer identity), what it calls, and for L7 the HTTP request.
// This type is the contract between the policy engine and the proxy.
type Request struct {
	Source      spiffeid.ID
	Destination Destination
	// HTTP is nil for an L4 (per-connection) decision. Rules that name
	// methods, paths or headers never match an L4 request (fail closed).
	HTTP *HTTPRequest
}

// Destination is the protected service as the inbound sidecar sees it.
type Destination struct {
	Service   string
	Namespace string
	Port      int
}

// HTTPRequest is the L7 part of a Request. Path must already be normalized
// with NormalizePath (the proxy rejects what does not normalize with 400).
type HTTPRequest struct {
	Method  string
	Path    string
	Headers http.Header
}

// Decision is the engine's answer.
type Decision struct {
	Allow bool
	// Policy and Rule name what decided. When no rule matched, Rule is
	// "default-deny" (or "default-allow") and Policy is the destination's
	// policy, or empty when it has none.
	Policy string
	Rule   string
	// Mode is "enforce" or "audit". In audit mode a denied request is
	// allowed and WouldDeny is set so the sidecar logs it.
	Mode      string
	WouldDeny bool
}

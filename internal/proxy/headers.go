package proxy

import (
	"net/http"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

// Checks of the inbound side on a request's header fields that no policy
// is asked about: the fields the sidecar sets for trust, HTTP upgrades,
// method or URL overrides, and the header bytes one caller has in flight.
// Field names are compared the way lenient servers read them: ASCII case
// folded and '_' taken for '-' (CGI, WSGI, Rack and PHP turn both
// X-Meshward-Peer-Identity and X_Meshward_Peer_Identity into
// HTTP_X_MESHWARD_PEER_IDENTITY, and which copy wins is theirs to decide).

// trustHeaders are the fields the inbound sidecar sets for the app from
// what it verified. Every incoming field whose folded name equals one of
// them is stripped, not refused: that is what has always happened to an
// exact copy, and it is Envoy's headers_with_underscores_action
// DROP_HEADER, applied here only to names that collide with a trusted
// field (other names with underscores pass unchanged).
var trustHeaders = []string{PeerIdentityHeader}

// OverrideHeaders make some frameworks and front ends serve another
// method or URL than the request line's, the one policy decided. With
// MeshConfig spec.refuseOverrideHeaders the inbound side refuses (400) a
// request carrying any of them, under any spelling that folds to one.
var OverrideHeaders = []string{
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	"X-Original-URL", "X-Rewrite-URL",
}

// Rules that name these refusals in deny events and the audit trail.
const (
	ruleH2CUpgrade       = "h2c-upgrade"
	ruleUpgradeForbidden = "upgrade-not-allowed"
	ruleOverrideHeader   = "override-header"
	ruleHeaderBudget     = "peer-header-budget"
)

// headerScan is what scanHeaders found.
type headerScan struct {
	http2Settings bool // a field folding to HTTP2-Settings (only h2c upgrades send it)
	override      bool // a field folding to one of OverrideHeaders
}

// scanHeaders strips from h every field whose name folds to a trust
// header and reports the fields its caller refuses. One pass over the
// keys; only keys of a length that could match are folded.
func scanHeaders(h http.Header) headerScan {
	var s headerScan
	for k := range h {
		switch len(k) {
		case len(PeerIdentityHeader):
			for _, t := range trustHeaders {
				if foldEqual(k, t) {
					delete(h, k) // deleting during range is safe
				}
			}
		// HTTP2-Settings has the length of X-Original-URL, X-HTTP-Method
		// that of X-Rewrite-URL.
		case len("HTTP2-Settings"), len("X-HTTP-Method-Override"), len("X-HTTP-Method"), len("X-Method-Override"):
			if foldEqual(k, "HTTP2-Settings") {
				s.http2Settings = true
				continue
			}
			for _, o := range OverrideHeaders {
				if foldEqual(k, o) {
					s.override = true
				}
			}
		}
	}
	return s
}

// foldEqual reports whether name equals want with ASCII case folded and
// '_' read as '-'.
func foldEqual(name, want string) bool {
	if len(name) != len(want) {
		return false
	}
	for i := range len(name) {
		if foldByte(name[i]) != foldByte(want[i]) {
			return false
		}
	}
	return true
}

func foldByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// upgradeRefusal decides a request's Upgrade fields (RFC 9110 7.8): ""
// when there are none or every protocol they offer may be forwarded, else
// the rule that refuses them. An h2c upgrade (or any to another HTTP
// version) is always refused: the requests inside the upgraded connection
// would reach the app as one byte stream, with no policy decision, no
// audit line and whatever identity header the caller wrote. WebSocket is
// forwarded (after the upgrade request itself passed policy), any other
// protocol only when allowed names it. Every protocol offered counts, in
// every Upgrade field: the app, not meshward, picks one of them.
func upgradeRefusal(vv []string, allowed []string) string {
	rule := ""
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.Trim(f, " \t"), "/")
			name = strings.TrimRight(name, " \t")
			switch {
			case name == "":
			case config.HTTPVersionUpgrade(name):
				return ruleH2CUpgrade
			case strings.EqualFold(name, "websocket"):
			case !containsFold(allowed, name):
				rule = ruleUpgradeForbidden
			}
		}
	}
	return rule
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// h2cUpgrade reports an h2c upgrade attempt: an Upgrade to another HTTP
// version, or an HTTP2-Settings field. The outbound side refuses it as
// well; which other protocols may pass is the upstream sidecar's call.
func h2cUpgrade(h http.Header) bool {
	if upgradeRefusal(h["Upgrade"], nil) == ruleH2CUpgrade {
		return true
	}
	for k := range h {
		if len(k) == len("HTTP2-Settings") && foldEqual(k, "HTTP2-Settings") {
			return true
		}
	}
	return false
}

// refuseUpgrade answers a refused upgrade: 403, as Envoy answers an
// upgrade type it is not configured for, and the connection closes after
// it, so nothing the caller sent for the new protocol is read as a
// request.
func refuseUpgrade(w http.ResponseWriter, rule string) {
	w.Header().Set("Connection", "close")
	msg := "meshward: upgrade not allowed"
	if rule == ruleH2CUpgrade {
		msg = "meshward: h2c upgrades are refused (every request must pass policy)"
	}
	httpError(w, http.StatusForbidden, msg)
}

// headBytes is about what r's head took on the wire: the request line and
// every field (HTTP/2: the decoded header list).
func headBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host) + 16
	for k, vv := range r.Header {
		for _, v := range vv {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// headerBudget bounds the header bytes of the requests each peer identity
// has in flight on the inbound side (from its handler's start to the end
// of its response), over all its connections and streams: a caller
// repeating the largest heads on hundreds of connections holds only its
// own share of what they cost (policy conditions, the copy to the app, the
// app's workers), and gets 429 beyond it; other identities keep theirs. A
// request is always admitted when its peer has nothing in flight (one head
// is bounded by MaxHeaderBytes). An identity has an entry only while it
// has a request in flight, so the map never holds more entries than there
// are requests in flight.
type headerBudget struct {
	limit int
	mu    sync.Mutex
	used  map[spiffeid.ID]int
}

func newHeaderBudget(limit int) *headerBudget {
	return &headerBudget{limit: limit, used: map[spiffeid.ID]int{}}
}

// acquire charges n bytes to peer; false (nothing charged) when they do
// not fit.
func (b *headerBudget) acquire(peer spiffeid.ID, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.used[peer]
	if u > 0 && u+n > b.limit {
		return false
	}
	b.used[peer] = u + n
	return true
}

// release gives back what acquire charged.
func (b *headerBudget) release(peer spiffeid.ID, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.used[peer] - n; u > 0 {
		b.used[peer] = u
	} else {
		delete(b.used, peer)
	}
}

// peers is how many identities have requests in flight.
func (b *headerBudget) peers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.used)
}

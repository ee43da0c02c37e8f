package proxy

import "time"

// Event is one request or TCP connection the sidecar handled, as observers
// (meshward tap, the audit trail's deny reports) see it. Its Method and
// Path are copies: a request's strings are pieces of its whole head
// (h1request.go), credentials included, which an event kept for later
// must not pin.
type Event struct {
	Time        time.Time     `json:"time"`
	Direction   string        `json:"direction"` // inbound | outbound
	Protocol    string        `json:"protocol"`  // http1 | http2 | grpc | tcp
	Source      string        `json:"source"`    // caller SPIFFE ID
	Destination string        `json:"destination"`
	Port        int           `json:"port,omitempty"`
	Method      string        `json:"method,omitempty"`
	Path        string        `json:"path,omitempty"` // normalized
	Status      int           `json:"status,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
	Decision    string        `json:"decision"` // allow | deny | audit-deny ("" outbound)
	Policy      string        `json:"policy,omitempty"`
	Rule        string        `json:"rule,omitempty"`
	Mode        string        `json:"mode,omitempty"`
}

func (p *Proxy) observe(e *Event) {
	if p.cfg.Observer != nil {
		p.cfg.Observer(e)
	}
}

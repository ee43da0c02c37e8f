package proxy

import (
	"time"

	"meshward.dev/meshward/internal/observe"
)

// Event is one request or TCP connection the sidecar handled, as observers
// (meshward tap, the audit trail's deny reports) see it. Its Method and
// Path are copies: a request's strings are pieces of its whole head
// (h1request.go), credentials included, which an event kept for later
// must not pin. Every string field is valid UTF-8 by the time an observer
// sees it (observe.Printable, in p.observe): the event goes on into
// protobuf (the deny report), JSON (tap) and spans, and a caller chooses
// its method and path.
//
// GRPCStatus is a gRPC call's real outcome, which Status (200 for most
// failed calls too) does not tell: the grpc-status of its response, "0"
// to "16", "other" (a value that is not one of the codes) or "none" (no
// grpc-status at all), read after the body (grpcstatus.go). It is empty
// for what is not gRPC.
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
	GRPCStatus  string        `json:"grpc_status,omitempty"` // gRPC only: 0-16 | other | none
	Duration    time.Duration `json:"duration_ns"`
	Decision    string        `json:"decision"` // allow | deny | audit-deny ("" outbound)
	Policy      string        `json:"policy,omitempty"`
	Rule        string        `json:"rule,omitempty"`
	Mode        string        `json:"mode,omitempty"`
}

func (p *Proxy) observe(e *Event) {
	e.printable()
	if p.cfg.Observer != nil {
		p.cfg.Observer(e)
	}
}

// printable makes every string field of e valid UTF-8, escaping rather
// than dropping what is not (a caller's GET /%ff arrives as the path
// "/\xff"; a report holding it would not marshal, and the Watch stream
// carrying it would end). TestEventStringsPrintable keeps this list
// complete.
func (e *Event) printable() {
	for _, f := range []*string{&e.Direction, &e.Protocol, &e.Source, &e.Destination,
		&e.Method, &e.Path, &e.GRPCStatus, &e.Decision, &e.Policy, &e.Rule, &e.Mode} {
		*f = observe.Printable(*f)
	}
}

package sidecar

import (
	"sync"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/proxy"
)

// Learn mode (`meshward policy suggest`): a sidecar whose inbound policy is
// in audit mode counts every call it lets through by (caller, port,
// method, path) and sends the aggregates to the control plane, which
// stores them. Aggregating here, not itemizing, is what keeps the counts
// true under load: a million calls of one shape are one entry with count
// 1,000,000, and neither the deny bound nor the control plane's deny rate
// limit applies to them.
const (
	// maxObservedKeys bounds the distinct (caller, port, method, path)
	// entries held between two sends; calls of a new shape beyond it are
	// counted in ObservationsDropped (the callers choose their paths).
	maxObservedKeys = 512
	// maxObservedPath and maxObservedMethod bound the caller-chosen
	// strings of an entry. A longer one is not recorded (a cut path is not
	// a path a policy could allow) but counted as dropped.
	maxObservedPath   = 256
	maxObservedMethod = 32
	// observeInterval is how often the entries are sent (with the next
	// report after it): the control plane stores one event per entry per
	// send, so this, with maxObservedKeys, bounds what one workload
	// writes. Half a full map is sent at the next report regardless.
	observeInterval = 30 * time.Second
)

type obsKey struct {
	source, method, path string
	port                 int32
}

type obsEntry struct {
	count       int64
	first, last int64 // unix nanoseconds
}

// observations aggregates the calls an audit-mode inbound policy let
// through, between sends.
type observations struct {
	now func() time.Time

	mu       sync.Mutex
	items    map[obsKey]*obsEntry
	dropped  int64
	lastSent time.Time
}

func newObservations(now func() time.Time) *observations {
	return &observations{now: now, items: map[obsKey]*obsEntry{}, lastSent: now()}
}

// observe counts e when it is an inbound call decided by a policy in audit
// mode. It reports whether the map is half full, so that the caller can
// send a report early. The proxy makes an event's strings printable; they
// go through observe.Printable again here (free when they are), so that an
// entry can never be what stops a report from marshaling.
func (o *observations) observe(e *proxy.Event) (halfFull bool) {
	if e.Direction != "inbound" || e.Mode != "audit" || (e.Decision != "allow" && e.Decision != "audit-deny") {
		return false
	}
	src, method, path := observe.Printable(e.Source), observe.Printable(e.Method), observe.Printable(e.Path)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(path) > maxObservedPath || len(method) > maxObservedMethod || len(src) > maxObservedPath {
		o.dropped = satAdd(o.dropped, 1)
		return false
	}
	k := obsKey{source: src, method: method, path: path, port: int32(e.Port)} //nolint:gosec // a TCP port: 0-65535
	t := e.Time.UnixNano()
	if it := o.items[k]; it != nil {
		it.count = satAdd(it.count, 1)
		it.first, it.last = min(it.first, t), max(it.last, t)
		return false
	}
	if len(o.items) >= maxObservedKeys {
		o.dropped = satAdd(o.dropped, 1)
		return false
	}
	o.items[k] = &obsEntry{count: 1, first: t, last: t}
	return len(o.items) == maxObservedKeys/2
}

// drain moves the entries into r when observeInterval has passed since the
// last send or the map is half full; otherwise it leaves r as it is.
func (o *observations) drain(r *apiv1.WorkloadReport) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if len(o.items) == 0 && o.dropped == 0 {
		o.lastSent = now
		return
	}
	if now.Sub(o.lastSent) < observeInterval && len(o.items) < maxObservedKeys/2 {
		return
	}
	out := make([]*apiv1.Observation, 0, len(o.items))
	for k, v := range o.items {
		out = append(out, &apiv1.Observation{Source: k.source, Port: k.port, Method: k.method, Path: k.path,
			Count: v.count, FirstSeen: v.first, LastSeen: v.last})
	}
	r.Observations, r.ObservationsDropped = out, o.dropped
	o.items, o.dropped, o.lastSent = map[obsKey]*obsEntry{}, 0, now
}

// requeue merges back the entries of a report that was never sent (its
// stream broke), so no count is lost to a broken stream; the bound still
// holds, and what it turns away is counted.
func (o *observations) requeue(r *apiv1.WorkloadReport) {
	if len(r.GetObservations()) == 0 && r.GetObservationsDropped() == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dropped = satAdd(o.dropped, r.GetObservationsDropped())
	for _, ob := range r.GetObservations() {
		k := obsKey{source: ob.GetSource(), method: ob.GetMethod(), path: ob.GetPath(), port: ob.GetPort()}
		if it := o.items[k]; it != nil {
			it.count = satAdd(it.count, ob.GetCount())
			it.first, it.last = min(it.first, ob.GetFirstSeen()), max(it.last, ob.GetLastSeen())
			continue
		}
		if len(o.items) >= maxObservedKeys {
			o.dropped = satAdd(o.dropped, ob.GetCount())
			continue
		}
		o.items[k] = &obsEntry{count: ob.GetCount(), first: ob.GetFirstSeen(), last: ob.GetLastSeen()}
	}
}

func satAdd(a, b int64) int64 {
	if c := a + b; c >= a {
		return c
	}
	return 1<<63 - 1
}

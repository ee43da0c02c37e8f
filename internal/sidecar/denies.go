package sidecar

import (
	"sync"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// maxDeniesPerReport bounds what one report carries to the control plane's
// audit trail, so a flood of denied requests cannot flood the store; the
// rest are counted.
const maxDeniesPerReport = 100

// denyBuffer collects denies between reports.
type denyBuffer struct {
	mu      sync.Mutex
	items   []*apiv1.Deny
	dropped int64
}

func (b *denyBuffer) add(d *apiv1.Deny) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) >= maxDeniesPerReport {
		b.dropped++
		return
	}
	b.items = append(b.items, d)
}

// drain moves the buffered denies into r.
func (b *denyBuffer) drain(r *apiv1.WorkloadReport) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.Denies, r.DeniesDropped = b.items, b.dropped
	b.items, b.dropped = nil, 0
}

// requeue puts back the denies of a report that was never sent (its
// stream broke), ahead of those buffered since, so the audit trail loses
// none to a broken stream; the bound still holds, and what it turns away
// is counted, with what the report had counted already.
func (b *denyBuffer) requeue(r *apiv1.WorkloadReport) {
	if len(r.GetDenies()) == 0 && r.GetDeniesDropped() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	items := append(r.Denies[:len(r.Denies):len(r.Denies)], b.items...)
	if over := len(items) - maxDeniesPerReport; over > 0 {
		b.dropped += int64(over)
		items = items[:maxDeniesPerReport]
	}
	b.items = items
	b.dropped += r.DeniesDropped
}

package sidecar

import (
	"strconv"
	"sync"
	"unicode/utf8"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// maxDeniesPerReport bounds what one report carries to the control plane's
// audit trail, so a flood of denied requests cannot flood the store; the
// rest are counted.
const maxDeniesPerReport = 100

// maxDenyField bounds the strings a caller chooses (method, path) in a
// deny: a path may hold 64 KiB before escaping and four times that after
// (observe.Printable), and 100 such denies would pass the control plane's
// message bound, which ends the Watch stream. The audit trail keeps the
// start and how much was cut.
const maxDenyField = 1024

// clip cuts s to at most max bytes, at a rune boundary and not inside an
// escape observe.Printable wrote, and says how many bytes it cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	for i := cut - 1; i >= 0 && i >= cut-10; i-- {
		if s[i] != '\\' {
			continue
		}
		n := 2
		if i+1 < len(s) {
			switch s[i+1] {
			case 'x':
				n = 4
			case 'u':
				n = 6
			case 'U':
				n = 10
			}
		}
		if i+n > cut {
			cut = i
		}
		break
	}
	return s[:cut] + "...(" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

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

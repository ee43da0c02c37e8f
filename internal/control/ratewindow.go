package control

import (
	"sync"
	"time"
)

// rateWindow allows at most max events per window and counts the rest. It
// keeps anyone who can reach the (open) bootstrap port from filling the
// audit trail with refused attempts; the metrics still count every one.
type rateWindow struct {
	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int
}

const (
	refusalWindow     = time.Minute
	refusalsPerWindow = 60
)

// allow reports whether one more event may be written now, and how many
// were dropped in the window that just ended (to be written once).
func (r *rateWindow) allow(now time.Time) (ok bool, droppedBefore int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.start) >= refusalWindow {
		droppedBefore = r.dropped
		r.start, r.n, r.dropped = now, 0, 0
	}
	if r.n >= refusalsPerWindow {
		r.dropped++
		return false, droppedBefore
	}
	r.n++
	return true, droppedBefore
}

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

// tokenBucket allows bursts of up to burst events and rate events per
// second after that. The zero value is full.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) refill(now time.Time, rate, burst float64) {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
		return
	}
	if d := now.Sub(b.last); d > 0 { // a clock that steps back refills nothing
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// take reports whether one event may pass now, and spends a token if so.
func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket has refilled completely (nothing about
// it is worth remembering).
func (b *tokenBucket) full(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	return b.tokens >= burst
}

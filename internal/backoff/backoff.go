// Package backoff spaces out retries: a delay that starts at a minimum,
// grows by a multiplier after every failed attempt up to a maximum, may
// add random jitter so a fleet does not retry in step, and starts again
// at the minimum after a success. It does not sleep or retry by itself;
// the caller waits the delay Next returns, on its own timer and context.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay schedule of one retry loop. Set Min and Max; the
// zero value of the rest is a doubling delay with no jitter. A Backoff is
// not safe for concurrent use (each loop keeps its own).
type Backoff struct {
	Min, Max time.Duration
	// Multiplier is how much the delay grows per attempt (0: 2).
	Multiplier float64
	// Jitter is the fraction of a delay added at random: a delay d is
	// d plus up to (not including) Jitter×d. 0: exact delays.
	Jitter float64
	// Rand returns a number in [0, n) for n > 0 (nil: math/rand/v2's
	// Int64N). Tests inject it.
	Rand func(n int64) int64

	cur time.Duration // the next delay before jitter; 0: Min
}

// Next returns the delay before the next attempt and grows the one after.
func (b *Backoff) Next() time.Duration {
	d := b.cur
	if d <= 0 {
		d = b.Min
	}
	d = min(d, b.Max)
	m := b.Multiplier
	if m <= 0 {
		m = 2
	}
	if grown := float64(d) * m; grown >= float64(b.Max) {
		b.cur = b.Max
	} else {
		b.cur = max(time.Duration(grown), b.Min)
	}
	if span := int64(float64(d) * b.Jitter); span > 0 {
		r := b.Rand
		if r == nil {
			r = rand.Int64N
		}
		d += time.Duration(r(span))
	}
	return d
}

// Reset starts the schedule again at Min (after a success).
func (b *Backoff) Reset() { b.cur = 0 }

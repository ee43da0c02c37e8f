package backoff

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNext(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	top := func(n int64) int64 { return n - 1 } // the largest jitter allowed
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"doubling, capped", Backoff{Min: 500 * ms, Max: 3 * time.Second},
			[]time.Duration{500 * ms, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"multiplier", Backoff{Min: 100 * ms, Max: time.Second, Multiplier: 3},
			[]time.Duration{100 * ms, 300 * ms, 900 * ms, time.Second}},
		{"no jitter drawn", Backoff{Min: 250 * ms, Max: time.Second, Jitter: 0.5, Rand: func(int64) int64 { return 0 }},
			[]time.Duration{250 * ms, 500 * ms, time.Second, time.Second}},
		{"most jitter", Backoff{Min: 250 * ms, Max: time.Second, Jitter: 0.5, Rand: top},
			[]time.Duration{375*ms - 1, 750*ms - 1, 1500*ms - 1, 1500*ms - 1}},
		{"min above max", Backoff{Min: 2 * time.Second, Max: time.Second},
			[]time.Duration{time.Second, time.Second}},
		{"no overflow", Backoff{Min: time.Duration(1 << 61), Max: time.Duration(1<<63 - 1), Multiplier: 16},
			[]time.Duration{1 << 61, 1<<63 - 1, 1<<63 - 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := tc.b
			var got []time.Duration
			for range tc.want {
				got = append(got, b.Next())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: time.Second, Max: time.Minute}
	b.Next()
	b.Next()
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Fatalf("after Reset, Next = %s, want the minimum 1s", got)
	}
}

// TestJitterBounds: with the real random source every delay stays in
// [d, d+Jitter×d), and the draw is asked for exactly that span.
func TestJitterBounds(t *testing.T) {
	t.Parallel()
	var spans []int64
	b := Backoff{Min: 250 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.5}
	b.Rand = func(n int64) int64 { spans = append(spans, n); return 0 }
	for range 8 {
		b.Next()
	}
	want := []int64{125e6, 250e6, 500e6, 1e9, 2e9, 4e9, 7.5e9, 7.5e9}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("jitter spans (-want +got):\n%s", diff)
	}
	b = Backoff{Min: 250 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.5}
	for range 1000 {
		base := b.cur
		if base == 0 {
			base = b.Min
		}
		if d := b.Next(); d < base || d >= base+base/2 {
			t.Fatalf("delay %s outside [%s, %s)", d, base, base+base/2)
		}
		if b.cur == b.Max {
			b.Reset()
		}
	}
}

package session

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRetryBackoff: renewals and watch reconnects wait 250ms, 500ms, ...
// up to 15s, each plus less than half of it again at random.
func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for _, tc := range []struct {
		name string
		draw func(n int64) int64
		want []time.Duration
	}{
		{"least", func(int64) int64 { return 0 },
			[]time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"most", func(n int64) int64 { return n - 1 },
			[]time.Duration{375*ms - 1, 750*ms - 1, 1500*ms - 1, 3*time.Second - 1, 6*time.Second - 1, 12*time.Second - 1, 22500*ms - 1, 22500*ms - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := retryBackoff()
			b.Rand = tc.draw
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

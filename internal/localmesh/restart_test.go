package localmesh

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRestartBackoff: a crashing component is restarted after 0.5s, 1s,
// 2s, ... up to 30s, exactly (the notice names the delay it waits).
func TestRestartBackoff(t *testing.T) {
	t.Parallel()
	b := restartBackoff()
	b.Rand = func(int64) int64 { t.Fatal("restart delays draw no jitter"); return 0 }
	var got []time.Duration
	for range 8 {
		got = append(got, b.Next())
	}
	s := time.Second
	want := []time.Duration{s / 2, s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restart delays (-want +got):\n%s", diff)
	}
	b.Reset()
	if d := b.Next(); d != s/2 {
		t.Errorf("after a stable run the delay is %s, want 500ms", d)
	}
}

package control

import (
	"testing"
	"time"
)

func TestRateWindow(t *testing.T) {
	var r rateWindow
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	for range refusalsPerWindow + 10 {
		if ok, _ := r.allow(t0); ok {
			allowed++
		}
	}
	if allowed != refusalsPerWindow {
		t.Fatalf("allowed %d in one window, want %d", allowed, refusalsPerWindow)
	}
	ok, dropped := r.allow(t0.Add(refusalWindow))
	if !ok || dropped != 10 {
		t.Fatalf("next window: ok=%v dropped=%d, want true and 10", ok, dropped)
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b tokenBucket
	n := 0
	for b.take(t0, 2, 5) {
		n++
	}
	if n != 5 {
		t.Fatalf("burst let %d through, want 5", n)
	}
	if b.take(t0.Add(-time.Hour), 2, 5) {
		t.Fatal("a clock stepping back refilled the bucket")
	}
	if !b.take(t0.Add(500*time.Millisecond), 2, 5) || b.take(t0.Add(500*time.Millisecond), 2, 5) {
		t.Fatal("half a second at 2/s should allow exactly one")
	}
	if b.full(t0.Add(time.Second), 2, 5) || !b.full(t0.Add(time.Hour), 2, 5) {
		t.Fatal("full is wrong")
	}
}

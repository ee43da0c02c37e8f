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

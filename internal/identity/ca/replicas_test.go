package ca

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/store"
)

// replicas are Authorities sharing one store, as control plane replicas
// share a database.
func replicas(t *testing.T, n int, st Store, c *clock) []*Authority {
	t.Helper()
	out := make([]*Authority, n)
	errs := make([]error, n)
	race(t, n, func(i int) {
		out[i], errs[i] = New(context.Background(), Config{TrustDomain: td, Store: st, Now: c.now})
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	return out
}

// race runs f(0..n-1) in goroutines released together, and fails the test
// if they have not all returned within 20 seconds.
func race(t *testing.T, n int, f func(i int)) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("racing goroutines did not finish in 20s")
	}
}

// TestReplicasNeverBothRotate: replicas started together on an empty
// store end up with one CA, and when they rotate at once exactly one
// rotation is saved; every loser gets ErrCAConflict and holds the
// winner's CA instead of overwriting it.
func TestReplicasNeverBothRotate(t *testing.T) {
	const n = 6
	ctx := context.Background()
	st := openStore(t)
	c := newClock()
	rs := replicas(t, n, st, c)
	fp := rs[0].SigningRootFP()
	for i, a := range rs {
		if a.SigningRootFP() != fp {
			t.Fatalf("replica %d created its own CA", i)
		}
	}

	for _, tc := range []struct {
		name   string
		rotate func(*Authority) error
	}{
		{"intermediate", func(a *Authority) error { return a.RotateIntermediate(ctx) }},
		{"root", func(a *Authority) error { return a.StartRootRotation(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make([]error, n)
			race(t, n, func(i int) { errs[i] = tc.rotate(rs[i]) })
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case errors.Is(err, store.ErrCAConflict):
				default:
					t.Errorf("replica %d: %v, want nil or ErrCAConflict", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("%d replicas saved a rotation, want exactly 1", won)
			}
			saved := newAuthority(t, st, c) // what the store holds
			for i, a := range rs {
				if got, want := identity.SerialHex(a.Intermediate()), identity.SerialHex(saved.Intermediate()); got != want {
					t.Errorf("replica %d signs with intermediate %s, the store holds %s", i, got, want)
				}
				if len(a.Bundle()) != len(saved.Bundle()) || a.Phase() != saved.Phase() {
					t.Errorf("replica %d: bundle of %d in phase %s, the store holds %d in %s", i, len(a.Bundle()), a.Phase(), len(saved.Bundle()), saved.Phase())
				}
			}
		})
	}

	// Every replica now holds the stored revision: any of them saves the
	// next change without a conflict.
	if err := rs[n-1].RotateIntermediate(ctx); err != nil {
		t.Fatalf("rotate after reload: %v", err)
	}
}

// TestTickReportsAReloadAsAChange: when a scheduled root rotation loses
// the race, Tick says the CA changed (it now holds the winner's bundle,
// which the control plane must push) and returns the conflict.
func TestTickReportsAReloadAsAChange(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	c := newClock()
	a, b := newAuthority(t, st, c), newAuthority(t, st, c)
	c.add(DefaultRootTTL*2/3 + time.Hour)
	if changed, err := a.Tick(ctx); !changed || err != nil {
		t.Fatalf("first Tick = %v, %v; want a change", changed, err)
	}
	changed, err := b.Tick(ctx)
	if !changed || !errors.Is(err, store.ErrCAConflict) {
		t.Fatalf("losing Tick = %v, %v; want a change and ErrCAConflict", changed, err)
	}
	if b.Phase() != PhasePrepare || len(b.Bundle()) != 2 || identity.Fingerprint(b.Bundle()[1]) != identity.Fingerprint(a.Bundle()[1]) {
		t.Fatal("the loser does not hold the winner's new root")
	}
}

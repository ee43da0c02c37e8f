package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// ErrRotationInProgress is returned when a root rotation is asked for while
// one runs.
var ErrRotationInProgress = errors.New("a root rotation is already in progress")

// Holding is what one connected workload reports it holds.
type Holding struct {
	SPIFFEID    string
	BundleRoots []string // fingerprints of the roots in its bundle
	SVIDRoot    string   // fingerprint of the root its SVID chains to
}

// Lagging is a workload that holds up the current phase, and why.
type Lagging struct {
	SPIFFEID string
	Reason   string
}

// StartRootRotation enters PhasePrepare: a new root joins the bundle while
// the current root keeps signing.
func (a *Authority) StartRootRotation(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state.Load().clone()
	if st.phase != PhaseIdle {
		return fmt.Errorf("%w (phase %s)", ErrRotationInProgress, st.phase)
	}
	root, err := a.newRoot()
	if err != nil {
		return fmt.Errorf("start root rotation: %w", err)
	}
	st.roots = append(st.roots, root)
	st.phase, st.phaseSince = PhasePrepare, a.cfg.Now()
	if err := a.save(ctx, st); err != nil {
		return fmt.Errorf("start root rotation: %w", err)
	}
	a.log.Info("root rotation: new root joined the bundle", observe.KeyFingerprint, identity.Fingerprint(root.cert))
	return nil
}

// Phase is the root rotation phase.
func (a *Authority) Phase() Phase { return a.state.Load().phase }

// RetireAfter is when, in PhaseRetire, the old root may leave the bundle.
func (a *Authority) RetireAfter() time.Time { return a.state.Load().retireAfter }

// newRoot is the root a rotation moves to (the last one in the bundle).
func (s *state) newRootFP() string { return identity.Fingerprint(s.roots[len(s.roots)-1].cert) }

// Lagging lists the workloads that hold up the current phase.
func (a *Authority) Lagging(fleet []Holding) []Lagging {
	st := a.state.Load()
	var out []Lagging
	switch st.phase {
	case PhasePrepare:
		want := st.newRootFP()
		for _, h := range fleet {
			if !slices.Contains(h.BundleRoots, want) {
				out = append(out, Lagging{SPIFFEID: h.SPIFFEID, Reason: "does not hold the new root in its bundle yet"})
			}
		}
	case PhaseActivate:
		want := st.newRootFP()
		for _, h := range fleet {
			if h.SVIDRoot != want {
				out = append(out, Lagging{SPIFFEID: h.SPIFFEID, Reason: "has not renewed its SVID under the new root yet"})
			}
		}
	}
	return out
}

// Advance moves root rotation on by at most one phase when the fleet's
// reports prove it safe. It returns whether the phase changed.
func (a *Authority) Advance(ctx context.Context, fleet []Holding) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state.Load()
	switch st.phase {
	case PhasePrepare:
		if len(a.Lagging(fleet)) > 0 {
			return false, nil
		}
		next := st.clone()
		next.signing = len(next.roots) - 1
		inter, err := a.newIntermediate(next.signingRoot())
		if err != nil {
			return false, fmt.Errorf("activate new root: %w", err)
		}
		next.inter = inter
		next.phase, next.phaseSince = PhaseActivate, a.cfg.Now()
		if err := a.save(ctx, next); err != nil {
			return false, err
		}
		a.log.Info("root rotation: new root signs now", observe.KeyFingerprint, next.newRootFP())
		return true, nil
	case PhaseActivate:
		if len(a.Lagging(fleet)) > 0 {
			return false, nil
		}
		// Every certificate the old roots signed must expire before they
		// leave the bundle: the issued-certificate log says when that is.
		var retire time.Time
		for i, r := range st.roots {
			if i == st.signing {
				continue
			}
			t, err := a.cfg.Store.LatestExpiry(ctx, identity.Fingerprint(r.cert))
			if err != nil {
				return false, fmt.Errorf("retire old root: %w", err)
			}
			if t.After(retire) {
				retire = t
			}
		}
		next := st.clone()
		next.phase, next.phaseSince, next.retireAfter = PhaseRetire, a.cfg.Now(), retire
		if err := a.save(ctx, next); err != nil {
			return false, err
		}
		a.log.Info("root rotation: waiting for the old root's certificates to expire", observe.KeyNotAfter, retire)
		return true, nil
	case PhaseRetire:
		if a.cfg.Now().Before(st.retireAfter) {
			return false, nil
		}
		next := st.clone()
		next.roots = []keyPair{st.signingRoot()}
		next.signing = 0
		next.phase, next.phaseSince, next.retireAfter = PhaseIdle, a.cfg.Now(), time.Time{}
		if err := a.save(ctx, next); err != nil {
			return false, err
		}
		a.log.Info("root rotation: complete, old root left the bundle")
		return true, nil
	}
	return false, nil
}

// Status describes the CA for `meshward ca show` and `ca status`.
type Status struct {
	Roots        []RootInfo
	Intermediate *x509.Certificate
	Phase        Phase
	PhaseSince   time.Time
	RetireAfter  time.Time
	NextRotation time.Time
}

// RootInfo is a root in the bundle and its role in a rotation.
type RootInfo struct {
	Cert  *x509.Certificate
	State string // active | staged (not signing yet) | retiring
}

// Status returns the CA's current status.
func (a *Authority) Status() Status {
	st := a.state.Load()
	s := Status{Intermediate: st.inter.cert, Phase: st.phase, PhaseSince: st.phaseSince, RetireAfter: st.retireAfter, NextRotation: a.NextIntermediateRotation()}
	for i, r := range st.roots {
		state := "active"
		switch {
		case i == st.signing:
		case i > st.signing:
			state = "staged"
		default:
			state = "retiring"
		}
		s.Roots = append(s.Roots, RootInfo{Cert: r.cert, State: state})
	}
	return s
}

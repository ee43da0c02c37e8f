package control

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/store"
)

// Learn mode: the aggregates an audit-mode sidecar reports (what it let
// through, with counts) are stored as request.observed audit events. They
// have their own bound, not the deny rate limit: a token bucket of
// obsBurst per identity refilling at obsRate per second (a sidecar sends at
// most 512 entries per 30 s, so a workload within its own bounds never
// meets this one); what it turns away is written as one request.observed
// event with outcome "dropped", so `policy suggest` can say its counts are
// incomplete.
const (
	obsBurst        = 1024
	obsRate         = 20.0
	maxObsPerReport = 512
	dropObsRate     = "observation_rate_bound"
)

type obsBounds struct {
	mu   sync.Mutex
	byID map[string]*tokenBucket
}

// recordObservations stores the observations of r. Only the reporter's own
// service is observed (it is believed only about itself), each string is
// printable and clipped, and banned identities are not believed at all.
func (s *Server) recordObservations(ctx context.Context, reporter spiffeid.ID, r *apiv1.WorkloadReport, now time.Time) {
	obs := r.GetObservations()
	if (len(obs) == 0 && r.GetObservationsDropped() <= 0) || s.isBanned(reporter) {
		return
	}
	_, svc, _ := identity.ParseServiceID(reporter)
	b := &s.observed
	b.mu.Lock()
	if b.byID == nil {
		b.byID = map[string]*tokenBucket{}
	}
	bucket := b.byID[reporter.String()]
	if bucket == nil {
		bucket = &tokenBucket{}
		b.byID[reporter.String()] = bucket
	}
	var keep []*apiv1.Observation
	dropped := satAdd(0, max(r.GetObservationsDropped(), 0))
	for i, o := range obs {
		if i >= maxObsPerReport || !bucket.take(now, obsRate, obsBurst) {
			dropped = satAdd(dropped, max(o.GetCount(), 0))
			continue
		}
		keep = append(keep, o)
	}
	b.mu.Unlock()
	if n := len(obs) - len(keep); n > 0 {
		s.m.reportDrops.WithLabelValues(dropObsRate).Add(float64(n))
	}
	for _, o := range keep {
		if o.GetCount() <= 0 {
			continue
		}
		d := &store.AuditDeny{
			Method: clip(observe.Printable(o.GetMethod()), 32), Path: clip(observe.Printable(o.GetPath()), maxFieldBytes), Port: o.GetPort(),
			Mode: "audit", Count: o.GetCount(), Target: reporter.String(),
		}
		if t := o.GetFirstSeen(); t != 0 {
			d.FirstSeen = time.Unix(0, t).UTC()
		}
		if t := o.GetLastSeen(); t != 0 {
			d.LastSeen = time.Unix(0, t).UTC()
		}
		what := d.Method + " " + d.Path
		if d.Method == "" {
			what = "connection"
		}
		e := store.AuditEvent{Time: now, Action: "request.observed", Actor: clip(observe.Printable(o.GetSource()), maxFieldBytes), Subject: svc,
			Detail: fmt.Sprintf("%s port %d count=%d", what, d.Port, d.Count), Outcome: "observed", Deny: d}
		if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit write failed", observe.KeyError, err)
			return
		}
	}
	if dropped > 0 {
		e := store.AuditEvent{Time: now, Action: "request.observed", Actor: reporter.String(), Subject: svc,
			Detail: fmt.Sprintf("%d observed calls not recorded (sidecar or control-plane bound): counts are incomplete", dropped), Outcome: "dropped"}
		if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit write failed", observe.KeyError, err)
		}
	}
}

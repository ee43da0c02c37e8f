package control

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/store"
)

// What one workload's reports may put into the audit trail and the
// metrics. A report is a claim by the workload, so it is recorded only as
// far as that workload is a witness (a deny at its own inbound side), at
// the time the control plane received it, and at a bounded rate; the rest
// is counted (meshward_control_report_items_dropped_total{reason}) and
// summed up once per interval in the trail and the log.
const (
	// maxDeniesPerReport is the most denies of one report recorded (a
	// sidecar sends at most 100); the rest are counted.
	maxDeniesPerReport = 100
	// denyBurst and denyRate bound the denies itemized per identity: a
	// token bucket of denyBurst that refills at denyRate per second.
	denyBurst = 300
	denyRate  = 1.0
	// maxFieldBytes bounds each string of a deny item (longer ones are cut).
	maxFieldBytes = 1024
	// maxRuleLabels bounds the distinct rule label values one identity
	// adds to meshward_control_denies_reported_total (then "other").
	maxRuleLabels = 32
	// maxTrafficSeries bounds the traffic counters one report may carry.
	maxTrafficSeries = 512
	// dropSummaryInterval is how often what was dropped is written to the
	// trail and the log (one line per identity, not one per item).
	dropSummaryInterval = time.Minute
)

// Reasons of meshward_control_report_items_dropped_total.
const (
	dropForeign     = "foreign_destination" // a deny about another service
	dropReportBound = "report_bound"        // beyond maxDeniesPerReport of its own
	dropRateBound   = "rate_bound"          // the identity's token bucket was empty
	dropBanned      = "banned"              // the reporting identity is banned
	dropTraffic     = "traffic_bound"       // beyond maxTrafficSeries
)

// reportBounds keeps, per reporting identity, its deny token bucket and
// what was dropped since the last summary.
type reportBounds struct {
	mu        sync.Mutex
	byID      map[string]*reporter
	lastFlush time.Time
}

type reporter struct {
	bucket         tokenBucket
	dropped        map[string]int64 // by reason, since the last summary
	sidecarDropped int64            // denies the sidecar itself did not itemize
	rules          map[string]bool  // rule label values used
}

func (b *reportBounds) get(id string) *reporter {
	if b.byID == nil {
		b.byID = map[string]*reporter{}
	}
	r := b.byID[id]
	if r == nil {
		r = &reporter{dropped: map[string]int64{}, rules: map[string]bool{}}
		b.byID[id] = r
	}
	return r
}

// ruleLabel is the rule label value for id: rule while id has used fewer
// than maxRuleLabels distinct ones, "other" after that.
func (r *reporter) ruleLabel(rule string) string {
	if r.rules[rule] {
		return rule
	}
	if len(r.rules) >= maxRuleLabels {
		return "other"
	}
	r.rules[rule] = true
	return rule
}

// recordDenies writes the denies a sidecar reported into the audit trail,
// with the policy version (and git commit) that decided. Only denies at
// the reporter's own service are kept (it witnessed them); each is stamped
// with now, the time the control plane received it (the sidecar's claimed
// time is kept as Deny.Reported); and per identity only so many are
// itemized (token bucket), the rest counted.
func (s *Server) recordDenies(ctx context.Context, reporter spiffeid.ID, r *apiv1.WorkloadReport, now time.Time) {
	if len(r.GetDenies()) == 0 && r.GetDeniesDropped() <= 0 {
		return
	}
	_, svc, _ := identity.ParseServiceID(reporter)
	banned := s.isBanned(reporter)
	s.hub.mu.Lock()
	var commit, version string
	if p := s.hub.state.policy; p != nil {
		commit, version = p.GitCommit, p.Version
	}
	s.hub.mu.Unlock()

	type item struct {
		d    *apiv1.Deny
		rule string
	}
	var keep []item
	dropped := map[string]int64{}
	own := 0
	s.reports.mu.Lock()
	st := s.reports.get(reporter.String())
	for _, d := range r.GetDenies() {
		switch {
		case banned:
			dropped[dropBanned]++
		case d.GetDestination() != svc:
			dropped[dropForeign]++
		case own >= maxDeniesPerReport:
			dropped[dropReportBound]++
		case !st.bucket.take(now, denyRate, denyBurst):
			own++
			dropped[dropRateBound]++
		default:
			own++
			keep = append(keep, item{d, st.ruleLabel(clip(d.GetRule(), 128))})
		}
	}
	for reason, n := range dropped {
		st.dropped[reason] += n
	}
	if n := r.GetDeniesDropped(); n > 0 && !banned {
		st.sidecarDropped = satAdd(st.sidecarDropped, n)
	}
	s.reports.mu.Unlock()
	for reason, n := range dropped {
		s.m.reportDrops.WithLabelValues(reason).Add(float64(n))
	}

	for _, it := range keep {
		d := it.d
		action, outcome := "request.deny", "denied"
		if d.GetMode() == "audit" {
			action, outcome = "request.audit-deny", "would-deny"
		}
		deny := &store.AuditDeny{
			Method: clip(d.GetMethod(), 32), Path: clip(d.GetPath(), maxFieldBytes), Port: d.GetPort(),
			Policy: clip(d.GetPolicy(), maxFieldBytes), Rule: clip(d.GetRule(), maxFieldBytes), Mode: clip(d.GetMode(), 16),
			PolicyVersion: clip(d.GetPolicyVersion(), 128),
		}
		if commit != "" && d.GetPolicyVersion() == version {
			deny.GitCommit = commit
		}
		if t := d.GetTime(); t != 0 {
			deny.Reported = time.Unix(0, t).UTC()
		}
		s.m.denies.WithLabelValues(svc, it.rule).Inc()
		e := store.AuditEvent{Time: now, Action: action, Actor: clip(d.GetSource(), maxFieldBytes), Subject: svc, Detail: denyDetail(deny), Outcome: outcome, Deny: deny}
		if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit write failed", observe.KeyError, err)
			return
		}
	}
}

// denyDetail is a deny's text in the trail, for people (`meshward audit`):
// "METHOD PATH port N rule=R policy=P mode=M version=V [commit=C]
// [reported=T]", with "connection" for METHOD PATH at L4. The path is the
// caller's and may hold anything printable, so this text is not parsed:
// readers take the fields from AuditEvent.Deny.
func denyDetail(d *store.AuditDeny) string {
	what := d.Method + " " + d.Path
	if d.Method == "" {
		what = "connection"
	}
	detail := fmt.Sprintf("%s port %d rule=%s policy=%s mode=%s version=%s", what, d.Port, d.Rule, d.Policy, d.Mode, d.PolicyVersion)
	if d.GitCommit != "" {
		detail += " commit=" + d.GitCommit
	}
	if !d.Reported.IsZero() {
		detail += " reported=" + d.Reported.Format(time.RFC3339Nano)
	}
	return detail
}

// flushDrops writes one audit event and one log line per identity that had
// report items dropped (or that reported denies it did not itemize
// itself): at the first tick after a drop, then at most once per
// dropSummaryInterval. It forgets idle identities.
func (s *Server) flushDrops(ctx context.Context, now time.Time) {
	b := &s.reports
	b.mu.Lock()
	if now.Sub(b.lastFlush) < dropSummaryInterval {
		b.mu.Unlock()
		return
	}
	type summary struct {
		id      string
		dropped map[string]int64
		sidecar int64
	}
	var out []summary
	for id, r := range b.byID {
		if len(r.dropped) > 0 || r.sidecarDropped > 0 {
			out = append(out, summary{id, r.dropped, r.sidecarDropped})
			r.dropped, r.sidecarDropped = map[string]int64{}, 0
			continue
		}
		if r.bucket.full(now, denyRate, denyBurst) {
			delete(b.byID, id) // nothing to remember
		}
	}
	if len(out) > 0 {
		b.lastFlush = now
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	for _, sm := range out {
		reasons := make([]string, 0, len(sm.dropped))
		var total int64
		for reason, n := range sm.dropped {
			reasons = append(reasons, fmt.Sprintf("%s=%d", reason, n))
			total += n
		}
		sort.Strings(reasons)
		subject := sm.id
		if id, err := spiffeid.FromString(sm.id); err == nil {
			if _, svc, ok := identity.ParseServiceID(id); ok {
				subject = svc
			}
		}
		var parts []string
		if total > 0 {
			parts = append(parts, fmt.Sprintf("%d reported denies not recorded (%s)", total, strings.Join(reasons, " ")))
			s.log.Warn("report items dropped", observe.KeySPIFFEID, sm.id, "count", total, "reasons", strings.Join(reasons, " "), "interval", dropSummaryInterval)
		}
		if sm.sidecar > 0 {
			parts = append(parts, fmt.Sprintf("%d more denies not itemized by the sidecar (rate bound)", sm.sidecar))
		}
		e := store.AuditEvent{Time: now, Action: "request.deny", Actor: sm.id, Subject: subject, Detail: strings.Join(parts, "; "), Outcome: "denied"}
		if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit write failed", observe.KeyError, err)
		}
	}
}

// boundTraffic caps the traffic counters of one report, counting the rest.
func (s *Server) boundTraffic(r *apiv1.WorkloadReport) {
	if n := len(r.GetTraffic()); n > maxTrafficSeries {
		s.m.reportDrops.WithLabelValues(dropTraffic).Add(float64(n - maxTrafficSeries))
		r.Traffic = r.Traffic[:maxTrafficSeries]
	}
}

// clip cuts s to at most n bytes, at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func satAdd(a, b int64) int64 {
	if c := a + b; c >= a {
		return c
	}
	return 1<<63 - 1
}

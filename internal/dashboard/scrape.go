package dashboard

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// seriesKey is one traffic series of a sidecar: an HTTP request series
// (kind "http") or a TCP connection series (kind "tcp").
type seriesKey struct {
	kind, source, destination, protocol, code, decision string
}

// sample is one scrape of one sidecar.
type sample struct {
	at     time.Time
	values map[seriesKey]float64
}

// target is a sidecar whose counters to read: its admin address (a label
// only, never fetched), who it is, and the traffic counters it last pushed
// in its report, with when the control plane received them.
type target struct {
	addr     string
	spiffeID string
	traffic  []*apiv1.TrafficCounter
	at       time.Time // zero: nothing pushed yet
}

// sidecarMetrics is what the scraper knows about one sidecar.
type sidecarMetrics struct {
	target
	prev, cur *sample // the last two good scrapes (prev may be nil)
	err       error   // the last scrape's error, if it failed
}

// rate is the per-second increase of a series between the last two good
// samples; ok is false when there is only one.
func (m *sidecarMetrics) rate(k seriesKey) (r float64, ok bool) {
	if m.cur == nil || m.prev == nil || m.err != nil {
		return 0, false
	}
	dt := m.cur.at.Sub(m.prev.at).Seconds()
	if dt <= 0 {
		return 0, false
	}
	d := m.cur.values[k] - m.prev.values[k]
	if d < 0 { // counter reset: the sidecar restarted
		d = m.cur.values[k]
	}
	return d / dt, true
}

// scraper keeps the last two samples of each sidecar's pushed counters,
// taken at most once per interval, whoever asks.
type scraper struct {
	now      func() time.Time
	interval time.Duration

	mu      sync.Mutex
	last    time.Time
	sidecar map[string]*sidecarMetrics // by admin address
}

// snapshot returns the per-sidecar metrics for targets, scraping first
// when the last scrape is older than the interval. The returned values are
// copies the caller may read freely.
func (s *scraper) snapshot(ctx context.Context, targets []target) []sidecarMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.sidecar == nil || s.last.IsZero() || now.Sub(s.last) >= s.interval || !s.covers(targets) {
		s.scrape(ctx, targets, now)
		s.last = now
	}
	out := make([]sidecarMetrics, 0, len(s.sidecar))
	for _, m := range s.sidecar {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].addr < out[j].addr })
	return out
}

// covers reports whether every target has been scraped at least once.
func (s *scraper) covers(targets []target) bool {
	for _, t := range targets {
		if _, ok := s.sidecar[t.addr]; !ok {
			return false
		}
	}
	return true
}

// errNoTraffic marks a sidecar that has pushed no traffic counters yet.
var errNoTraffic = errors.New("no traffic counters reported yet")

// scrape takes the counters each sidecar pushed in its report. Nothing is
// fetched: an admin address is the workload's own claim, and fetching it
// would let a workload point the control plane at any port it likes.
func (s *scraper) scrape(_ context.Context, targets []target, _ time.Time) {
	if s.sidecar == nil {
		s.sidecar = map[string]*sidecarMetrics{}
	}
	seen := map[string]bool{}
	for _, t := range targets {
		seen[t.addr] = true
		m := s.sidecar[t.addr]
		if m == nil || m.spiffeID != t.spiffeID {
			// A new sidecar, or another one on a reused port.
			m = &sidecarMetrics{target: t}
			s.sidecar[t.addr] = m
		}
		m.target = t
		if t.at.IsZero() {
			m.err = errNoTraffic
			continue
		}
		m.err = nil
		if m.cur == nil || !m.cur.at.Equal(t.at) {
			m.prev, m.cur = m.cur, &sample{at: t.at, values: trafficValues(t.traffic)}
		}
	}
	for addr := range s.sidecar {
		if !seen[addr] {
			delete(s.sidecar, addr)
		}
	}
}

// trafficValues turns pushed counters into series.
func trafficValues(cs []*apiv1.TrafficCounter) map[seriesKey]float64 {
	out := make(map[seriesKey]float64, len(cs))
	for _, c := range cs {
		if c.GetKind() != "http" && c.GetKind() != "tcp" {
			continue
		}
		k := seriesKey{kind: c.GetKind(), source: c.GetSource(), destination: c.GetDestination(), protocol: c.GetProtocol(), code: c.GetCode(), decision: c.GetDecision()}
		out[k] += c.GetValue()
	}
	return out
}

package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The sidecar metrics the graph is built from (docs/metrics.md).
const (
	metricRequests = "meshward_requests_total"
	metricTCPConns = "meshward_tcp_connections_total"
)

// maxScrapeBytes bounds one sidecar's /metrics response.
const maxScrapeBytes = 4 << 20

// maxConcurrentScrapes bounds how many sidecars are scraped at once.
const maxConcurrentScrapes = 8

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

// target is a sidecar to scrape: its admin address and who it is.
type target struct {
	addr     string
	spiffeID string
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

// scraper fetches the sidecars' /metrics, at most once per interval,
// whoever asks.
type scraper struct {
	client      *http.Client
	now         func() time.Time
	interval    time.Duration
	timeout     time.Duration
	allowRemote bool

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
		// The result serves every viewer: a viewer that goes away must not
		// cut it short (each fetch has its own timeout).
		s.scrape(context.WithoutCancel(ctx), targets, now)
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

func (s *scraper) scrape(ctx context.Context, targets []target, now time.Time) {
	if s.sidecar == nil {
		s.sidecar = map[string]*sidecarMetrics{}
	}
	type result struct {
		t      target
		values map[seriesKey]float64
		err    error
	}
	results := make([]result, len(targets))
	sem := make(chan struct{}, maxConcurrentScrapes)
	var wg sync.WaitGroup
	for i, t := range targets {
		results[i].t = t
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i].values, results[i].err = s.fetch(ctx, t.addr)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.t.addr] = true
		m := s.sidecar[r.t.addr]
		if m == nil || m.spiffeID != r.t.spiffeID {
			// A new sidecar, or another one on a reused port.
			m = &sidecarMetrics{target: r.t}
			s.sidecar[r.t.addr] = m
		}
		m.err = r.err
		if r.err == nil {
			m.prev, m.cur = m.cur, &sample{at: now, values: r.values}
		}
	}
	for addr := range s.sidecar {
		if !seen[addr] {
			delete(s.sidecar, addr)
		}
	}
}

// errRemoteScrape refuses admin addresses the dashboard must not fetch.
var errRemoteScrape = errors.New("admin address is not a loopback IP address")

// fetch scrapes one sidecar. The address comes from the sidecar's own
// report, so it is only fetched when it is an IP literal (no name to
// resolve) and, unless remote scraping is allowed, a loopback one: the
// dashboard is not a way to make the control plane fetch arbitrary URLs.
func (s *scraper) fetch(ctx context.Context, addr string) (map[seriesKey]float64, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if !s.allowRemote && !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("%s: %w", addr, errRemoteScrape)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ap.Addr().String(), fmt.Sprint(ap.Port()))+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", addr, resp.StatusCode)
	}
	values, err := parseTraffic(io.LimitReader(resp.Body, maxScrapeBytes))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return values, nil
}

// parseTraffic reads the traffic counters out of a Prometheus text
// exposition.
func parseTraffic(r io.Reader) (map[seriesKey]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[seriesKey]float64{}
	for name, mf := range mfs {
		var kind string
		switch name {
		case metricRequests:
			kind = "http"
		case metricTCPConns:
			kind = "tcp"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			k := seriesKey{kind: kind}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					k.source = l.GetValue()
				case "destination":
					k.destination = l.GetValue()
				case "protocol":
					k.protocol = l.GetValue()
				case "code":
					k.code = l.GetValue()
				case "decision":
					k.decision = l.GetValue()
				}
			}
			out[k] += counterValue(m)
		}
	}
	return out, nil
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if u := m.GetUntyped(); u != nil {
		return u.GetValue()
	}
	return 0
}

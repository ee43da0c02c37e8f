package control

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meshward.dev/meshward/internal/identity"
)

// metrics are the control plane's Prometheus metrics (docs/metrics.md).
type metrics struct {
	certsIssued  *prometheus.CounterVec // kind: bootstrap | renew | control
	certsRefused *prometheus.CounterVec // reason
	tokens       *prometheus.CounterVec // outcome: created | used | refused
	pushLatency  prometheus.Histogram
	denies       *prometheus.CounterVec // destination, rule
	reportDrops  *prometheus.CounterVec // reason
	watchRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		certsIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_control_certs_issued_total",
			Help: "Certificates the CA signed, by kind (bootstrap, renew).",
		}, []string{"kind"}),
		certsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_control_certs_refused_total",
			Help: "Certificate requests the control plane refused, by reason.",
		}, []string{"reason"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_control_tokens_total",
			Help: "Join tokens by outcome: created, used, refused.",
		}, []string{"outcome"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshward_control_watch_push_seconds",
			Help:    "Time from a mesh state change to its update being sent on a watch stream.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		denies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_control_denies_reported_total",
			Help: "Requests and connections the sidecars denied and reported, by destination and deciding rule.",
		}, []string{"destination", "rule"}),
		reportDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_control_report_items_dropped_total",
			Help: "Items of workload reports the control plane did not record, by reason (foreign_destination, report_bound, rate_bound, banned, traffic_bound).",
		}, []string{"reason"}),
		watchRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshward_control_watch_refused_total",
			Help: "Watch streams refused because their identity already had the most allowed open.",
		}),
	}
	reg.MustRegister(m.certsIssued, m.certsRefused, m.tokens, m.pushLatency, m.denies, m.reportDrops, m.watchRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshward_control_connected_sidecars",
			Help: "Sidecars with an open watch stream.",
		}, func() float64 { return float64(s.hub.size()) }),
		caExpiry{s},
		policyVersions{s},
	)
	return m
}

// caExpiry reports when each CA certificate expires.
type caExpiry struct{ s *Server }

var caExpiryDesc = prometheus.NewDesc("meshward_control_ca_expiry_timestamp_seconds",
	"When each CA certificate expires (unix seconds), by role and state.", []string{"role", "state", "serial"}, nil)

func (caExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- caExpiryDesc }
func (c caExpiry) Collect(ch chan<- prometheus.Metric) {
	st := c.s.cfg.CA.Status()
	for _, r := range st.Roots {
		ch <- prometheus.MustNewConstMetric(caExpiryDesc, prometheus.GaugeValue, float64(r.Cert.NotAfter.Unix()), "root", r.State, identity.SerialHex(r.Cert))
	}
	ch <- prometheus.MustNewConstMetric(caExpiryDesc, prometheus.GaugeValue, float64(st.Intermediate.NotAfter.Unix()), "intermediate", "active", identity.SerialHex(st.Intermediate))
}

// policyVersions reports the policy version each connected sidecar holds.
type policyVersions struct{ s *Server }

var policyVersionDesc = prometheus.NewDesc("meshward_control_sidecar_policy_info",
	"1 for the policy version each connected sidecar enforces (version \"\" until it has one).", []string{"spiffe_id", "version"}, nil)

func (policyVersions) Describe(ch chan<- *prometheus.Desc) { ch <- policyVersionDesc }
func (p policyVersions) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{}
	for _, w := range p.s.hub.workloads() {
		k := [2]string{w.SpiffeId, w.PolicyVersion}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(policyVersionDesc, prometheus.GaugeValue, 1, w.SpiffeId, w.PolicyVersion)
	}
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

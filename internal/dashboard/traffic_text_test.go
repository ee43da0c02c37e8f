package dashboard

import (
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The dashboard reads the counters sidecars push (trafficValues) and never
// fetches /metrics; the tests still write their fixtures as the Prometheus
// text a sidecar exposes, and this turns that text into series.

// The sidecar metrics the pushed counters come from (docs/metrics.md).
const (
	metricRequests = "meshward_requests_total"
	metricTCPConns = "meshward_tcp_connections_total"
)

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

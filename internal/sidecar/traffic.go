package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// maxTrafficSeries bounds the counters one report carries (the control
// plane keeps at most as many).
const maxTrafficSeries = 512

// trafficCounters are the sidecar's traffic counters (meshward_requests_total
// and meshward_tcp_connections_total) for its report: pushed to the control
// plane, so that nothing has to fetch them from an address a workload names.
func trafficCounters(g prometheus.Gatherer) []*apiv1.TrafficCounter {
	mfs, err := g.Gather()
	if err != nil {
		return nil
	}
	var out []*apiv1.TrafficCounter
	for _, mf := range mfs {
		var kind string
		switch mf.GetName() {
		case "meshward_requests_total":
			kind = "http"
		case "meshward_tcp_connections_total":
			kind = "tcp"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(out) == maxTrafficSeries {
				return out
			}
			c := &apiv1.TrafficCounter{Kind: kind, Value: m.GetCounter().GetValue()}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					c.Source = l.GetValue()
				case "destination":
					c.Destination = l.GetValue()
				case "protocol":
					c.Protocol = l.GetValue()
				case "code":
					c.Code = l.GetValue()
				case "decision":
					c.Decision = l.GetValue()
				}
			}
			out = append(out, c)
		}
	}
	return out
}

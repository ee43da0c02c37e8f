package sidecar

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/testing/protocmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

func TestTrafficCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshward_requests_total"}, []string{"source", "destination", "protocol", "code", "decision"})
	tcp := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshward_tcp_connections_total"}, []string{"source", "destination", "decision"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshward_other_total"})
	reg.MustRegister(req, tcp, other)
	req.WithLabelValues("a", "b", "http1", "200", "allow").Add(3)
	tcp.WithLabelValues("a", "c", "").Inc()
	other.Inc()
	want := []*apiv1.TrafficCounter{
		{Kind: "http", Source: "a", Destination: "b", Protocol: "http1", Code: "200", Decision: "allow", Value: 3},
		{Kind: "tcp", Source: "a", Destination: "c", Value: 1},
	}
	if diff := cmp.Diff(want, trafficCounters(reg), protocmp.Transform()); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}
	for i := range maxTrafficSeries + 10 {
		tcp.WithLabelValues("a", string(rune('A'+i)), "").Inc()
	}
	if n := len(trafficCounters(reg)); n != maxTrafficSeries {
		t.Errorf("%d series in a report, want at most %d", n, maxTrafficSeries)
	}
}

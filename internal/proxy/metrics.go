package proxy

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Limit names, the values of the limit label of
// meshward_limit_rejections_total.
const (
	limitConnsPerPeer = "connections_per_peer"
	limitRapidReset   = "h2_rapid_reset"
	limitHeaderBytes  = "header_bytes"
	limitReadHeader   = "read_header_timeout"
	limitPeerHeaders  = "header_bytes_per_peer"
	limitH2Protocol   = "h2_protocol"
)

type metrics struct {
	requests          *prometheus.CounterVec   // source, destination, protocol, code, decision
	requestDuration   *prometheus.HistogramVec // direction, protocol
	tcpConns          *prometheus.CounterVec   // source, destination, decision
	tcpBytes          *prometheus.CounterVec   // direction (tx/rx)
	handshakeFailures *prometheus.CounterVec   // reason
	limitRejections   *prometheus.CounterVec   // limit
	activeConns       *prometheus.GaugeVec     // direction
	policyDenies      *prometheus.CounterVec   // policy, rule, mode
	grpcResponses     *prometheus.CounterVec   // direction, source, destination, grpc_status

	// Children of requests, requestDuration and grpcResponses by label set: the
	// per-request path then costs one map lookup instead of hashing the
	// labels under the vector's lock and formatting the status code.
	reqCache  sync.Map // requestKey -> prometheus.Counter
	durCache  sync.Map // [2]string{direction, protocol} -> prometheus.Observer
	grpcCache sync.Map // grpcKey -> prometheus.Counter
}

type grpcKey struct {
	dir, src, dst, status string
}

// grpcResponse counts one gRPC response; status is a grpcStatus name, so
// the label has at most 19 values.
func (m *metrics) grpcResponse(dir, src, dst, status string) {
	k := grpcKey{dir: dir, src: src, dst: dst, status: status}
	c, ok := m.grpcCache.Load(k)
	if !ok {
		c, _ = m.grpcCache.LoadOrStore(k, m.grpcResponses.WithLabelValues(dir, src, dst, status))
	}
	c.(prometheus.Counter).Inc()
}

type requestKey struct {
	src, dst, proto, decision string
	code                      int
}

// request counts one request.
func (m *metrics) request(src, dst, proto string, code int, decision string) {
	k := requestKey{src: src, dst: dst, proto: proto, decision: decision, code: code}
	c, ok := m.reqCache.Load(k)
	if !ok {
		c, _ = m.reqCache.LoadOrStore(k, m.requests.WithLabelValues(src, dst, proto, strconv.Itoa(code), decision))
	}
	c.(prometheus.Counter).Inc()
}

// duration is the request-duration histogram of one direction and protocol.
func (m *metrics) duration(direction, proto string) prometheus.Observer {
	k := [2]string{direction, proto}
	o, ok := m.durCache.Load(k)
	if !ok {
		o, _ = m.durCache.LoadOrStore(k, m.requestDuration.WithLabelValues(direction, proto))
	}
	return o.(prometheus.Observer)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_requests_total",
			Help: "HTTP and gRPC requests handled by the sidecar, by caller, callee, protocol, status code and policy decision.",
		}, []string{"source", "destination", "protocol", "code", "decision"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshward_request_duration_seconds",
			Help:    "Time from request received to response headers sent, by direction.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"direction", "protocol"}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_tcp_connections_total",
			Help: "Raw TCP connections through the sidecar, by caller, callee and decision.",
		}, []string{"source", "destination", "decision"}),
		tcpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_tcp_bytes_total",
			Help: "Bytes copied on raw TCP connections, by direction (sent to / received from the app).",
		}, []string{"direction"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_tls_handshake_failures_total",
			Help: "Refused or failed mTLS handshakes, by reason.",
		}, []string{"side", "reason"}),
		limitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_limit_rejections_total",
			Help: "Connections or requests refused by an abuse limit, by limit.",
		}, []string{"limit"}),
		policyDenies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_policy_denies_total",
			Help: "Requests and connections denied (decision deny) or, in audit mode, that would have been (audit-deny), by deciding policy and rule.",
		}, []string{"policy", "rule", "decision"}),
		grpcResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshward_grpc_responses_total",
			Help: "gRPC responses through the sidecar, by direction, caller, callee and grpc-status (0 to 16; other: not one of the codes; none: no grpc-status).",
		}, []string{"direction", "source", "destination", "grpc_status"}),
		activeConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshward_active_connections",
			Help: "Open connections, by listener.",
		}, []string{"listener"}),
	}
	var err error
	// Several proxies may share a registry (tests, the bench): reuse the
	// collectors that are already there.
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.requestDuration, err = register(reg, m.requestDuration); err != nil {
		return nil, err
	}
	if m.tcpConns, err = register(reg, m.tcpConns); err != nil {
		return nil, err
	}
	if m.tcpBytes, err = register(reg, m.tcpBytes); err != nil {
		return nil, err
	}
	if m.handshakeFailures, err = register(reg, m.handshakeFailures); err != nil {
		return nil, err
	}
	if m.policyDenies, err = register(reg, m.policyDenies); err != nil {
		return nil, err
	}
	if m.limitRejections, err = register(reg, m.limitRejections); err != nil {
		return nil, err
	}
	if m.grpcResponses, err = register(reg, m.grpcResponses); err != nil {
		return nil, err
	}
	if m.activeConns, err = register(reg, m.activeConns); err != nil {
		return nil, err
	}
	// Pre-create the limit series so dashboards see zeros.
	for _, l := range []string{limitConnsPerPeer, limitRapidReset, limitHeaderBytes, limitReadHeader, limitPeerHeaders, limitH2Protocol} {
		m.limitRejections.WithLabelValues(l)
	}
	return m, nil
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// Package sidecar runs one sidecar process: it opens the workload's
// session with the control plane (session, which keeps its SVID and bundle
// in an svid.Holder), runs the data plane (proxy) with the policy, bans and
// endpoints the control plane's watch stream pushes, serves the admin port
// (/metrics, /healthz, /readyz) and the SPIFFE Workload API. It is kept
// free of anything only other commands need (Kubernetes clients, the
// scanner), so the lean meshward-proxy binary links only this.
package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
	"meshward.dev/meshward/internal/proxy"
	"meshward.dev/meshward/internal/proxy/workloadapi"
)

// Config is one sidecar's settings.
type Config struct {
	Service     string
	Namespace   string
	Control     string               // control plane address
	Token       string               // join token
	Bundle      []byte               // optional: PEM CA roots the control plane must chain to, besides the token's pin
	TrustDomain spiffeid.TrustDomain // optional: required trust domain
	Inbound     string               // mTLS listener ("" for none)
	App         string               // the app's loopback address
	Protocol    proxy.Protocol

	// AllowUpgrades are the Upgrade protocols forwarded besides websocket.
	AllowUpgrades []string

	Port        int // service port policies name (0: the app's port)
	Upstreams   []proxy.Upstream
	HTTPProxy   string
	Admin       string // /metrics, /healthz, /readyz, /endpoints, /tap
	WorkloadAPI string // unix socket path ("" for none)
	// WorkloadUID is the app's user: it owns the Workload API socket and
	// is the only user served. WorkloadApp, when set, names the app's
	// process (one "PID START" line per run, "-" when it exits; see
	// workloadapi.FollowApps), and only it and its descendants are served.
	WorkloadUID int
	WorkloadApp io.Reader
	// Telemetry overrides the MeshConfig's spec.telemetry for this
	// sidecar (nil fields follow it); Tracing false also means no
	// exporter is started.
	Telemetry policy.Telemetry
	Logger    *slog.Logger
}

// ErrConfig marks errors in the sidecar's configuration (exit code 2).
var ErrConfig = errors.New("sidecar config")

// sidecarState is what the watch stream has told the sidecar, for reports
// and the admin endpoints.
type sidecarState struct {
	mu            sync.Mutex
	configured    bool // the first update is applied
	policyVersion string
	policyError   string
	endpoints     map[string][]string
}

// isConfigured reports whether the first update from the control plane is
// in force: before it the sidecar knows no policy (so denies every call)
// and no endpoints.
func (st *sidecarState) isConfigured() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.configured
}

// endpointsJSON is the registry as the sidecar holds it, for /endpoints.
func (st *sidecarState) endpointsJSON() ([]byte, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return json.Marshal(st.endpoints)
}

// Run bootstraps the sidecar's identity and runs it until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = observe.Discard()
	}

	// Everything but the identity is checked before the join token, which
	// works once, is redeemed.
	pre := proxy.Config{
		Service: cfg.Service, Namespace: cfg.Namespace, TrustDomain: cfg.TrustDomain,
		InboundAddr: cfg.Inbound, AppAddr: cfg.App, AppProtocol: cfg.Protocol, Port: cfg.Port, AllowUpgrades: cfg.AllowUpgrades,
		Upstreams: cfg.Upstreams, HTTPProxyAddr: cfg.HTTPProxy,
	}
	if err := pre.ValidateBeforeIdentity(); err != nil {
		return fmt.Errorf("%w: %w (the join token was not used)", ErrConfig, err)
	}
	if err := pre.CheckListenersFree(); err != nil {
		return fmt.Errorf("%w: %w (the join token was not used)", ErrConfig, err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer adminLn.Close()

	taps := newTapHub()
	denies := &denyBuffer{}
	observed := newObservations(time.Now)
	var (
		p     *proxy.Proxy
		ready = make(chan struct{})
		state = &sidecarState{endpoints: map[string][]string{}}
	)
	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var sess *session.Session
	sess, err = session.New(bootCtx, session.Config{
		ControlAddr: cfg.Control,
		Token:       cfg.Token,
		Bundle:      cfg.Bundle,
		TrustDomain: cfg.TrustDomain,
		Logger:      log.With(observe.KeyComponent, "identity"),
		Report: func() *apiv1.WorkloadReport {
			r := &apiv1.WorkloadReport{AdminAddr: adminLn.Addr().String()}
			if p != nil && p.InboundAddr() != nil {
				r.InboundAddr = p.InboundAddr().String()
			}
			state.mu.Lock()
			r.PolicyVersion, r.PolicyError = state.policyVersion, state.policyError
			state.mu.Unlock()
			r.ActiveConnections, r.TotalRequests = trafficCounts(reg)
			r.Traffic = trafficCounters(reg)
			denies.drain(r)
			observed.drain(r)
			return r
		},
		Unsent: func(r *apiv1.WorkloadReport) { denies.requeue(r); observed.requeue(r) },
		OnUpdate: func(u *apiv1.MeshUpdate) {
			<-ready
			applyUpdate(p, sess.Holder().TrustDomain().Name(), state, u, log)
		},
	})
	if err != nil {
		return fmt.Errorf("bootstrap identity: %w", err)
	}
	defer sess.Close()
	ids := sess.Holder()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshward_svid_expiry_timestamp_seconds",
		Help: "When the sidecar's current X.509-SVID expires (unix seconds).",
	}, func() float64 {
		if s, err := ids.GetX509SVID(); err == nil {
			return float64(s.Certificates[0].NotAfter.Unix())
		}
		return 0
	}))

	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "meshward_report_strings_escaped_total",
		Help: "Strings in the sidecar's reports to the control plane that were not valid UTF-8 and were sent escaped.",
	}, func() float64 { return float64(sess.ReportStringsEscaped()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "meshward_report_denies_unmarshalable_total",
		Help: "Denies dropped from a report because they would not marshal.",
	}, func() float64 { return float64(sess.ReportDeniesUnmarshalable()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "meshward_control_watch_sessions_total",
		Help: "Watch streams the sidecar opened to the control plane (1 plus one per reconnect).",
	}, func() float64 { return float64(sess.WatchSessions()) }))

	tracer, shutdownTracing := trace.Tracer(nil), func(context.Context) error { return nil }
	if cfg.Telemetry.Tracing == nil || *cfg.Telemetry.Tracing {
		if tracer, shutdownTracing, err = observe.Tracer(ctx, cfg.Service+"-proxy"); err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = shutdownTracing(sctx)
	}()
	p, err = proxy.New(proxy.Config{
		Tracer:  tracer,
		Service: cfg.Service, Namespace: cfg.Namespace, TrustDomain: ids.TrustDomain(),
		SVID: ids, Bundle: ids,
		InboundAddr: cfg.Inbound, AppAddr: cfg.App, AppProtocol: cfg.Protocol, Port: cfg.Port, AllowUpgrades: cfg.AllowUpgrades,
		Upstreams: cfg.Upstreams, HTTPProxyAddr: cfg.HTTPProxy,
		Logger: log, Registerer: reg, Telemetry: cfg.Telemetry,
		Observer: func(e *proxy.Event) {
			if e.Decision == "deny" || e.Decision == "audit-deny" {
				denies.add(denyMessage(e, state))
				sess.ReportNow()
			}
			if observed.observe(e) {
				sess.ReportNow()
			}
			if taps.active() {
				taps.publish(e)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	close(ready)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sess.Run(ctx) })
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return serveAdmin(ctx, adminLn, reg, ids, state, taps) })
	if cfg.WorkloadAPI != "" {
		wlog := log.With(observe.KeyComponent, "workloadapi")
		pol := workloadapi.NewPolicy(uint32(cfg.WorkloadUID), cfg.WorkloadApp != nil) //nolint:gosec // New refuses a negative uid
		ws, err := workloadapi.New(workloadapi.Config{Path: cfg.WorkloadAPI, Source: ids, Logger: wlog, UID: cfg.WorkloadUID, Attestor: pol})
		if err != nil {
			return err
		}
		if cfg.WorkloadApp != nil {
			go workloadapi.FollowApps(cfg.WorkloadApp, pol, wlog)
		}
		g.Go(func() error { return ws.Run(ctx) })
	}
	attrs := []any{"admin", adminLn.Addr().String()}
	if a := p.InboundAddr(); a != nil {
		attrs = append(attrs, "inbound", a.String())
	}
	log.Info("sidecar running", attrs...)
	return g.Wait()
}

// CompilePolicy compiles a pushed policy version as the sidecar runs it:
// with policy.Compile, knowing only its own trust domain (the mesh file and
// the registry are the control plane's; the clock is the real one).
func CompilePolicy(pol *apiv1.Policy, trustDomain string) (*policy.Engine, error) {
	return policy.Compile(policywire.Files(pol.GetFiles()), policy.Options{TrustDomain: trustDomain})
}

// applyUpdate hands a watch-stream update to the proxy. A policy that does
// not compile is rejected whole: the old one stays in force, and the next
// report tells the control plane why.
func applyUpdate(p *proxy.Proxy, td string, st *sidecarState, u *apiv1.MeshUpdate, log *slog.Logger) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if pol := u.GetPolicy(); pol != nil && pol.Version != st.policyVersion {
		e, err := CompilePolicy(pol, td)
		if err != nil {
			st.policyError = err.Error()
			log.Error("pushed policy rejected; the previous policy stays in force", observe.KeyVersion, pol.Version, observe.KeyError, err)
		} else {
			p.SetPolicy(e)
			st.policyVersion, st.policyError = pol.Version, ""
			log.Info("policy in force", observe.KeyVersion, pol.Version, "revision", pol.Revision)
		}
	}
	var banned []spiffeid.ID
	for _, b := range u.GetBanned() {
		if id, err := spiffeid.FromString(b); err == nil {
			banned = append(banned, id)
		}
	}
	p.SetBanned(banned)
	// An incomplete registry (a control plane that just restarted) may
	// lack endpoints that still run: then only add, never remove.
	next := map[string][]string{}
	for svc, eps := range u.GetEndpoints() {
		next[svc] = eps.GetAddrs()
	}
	if !u.GetEndpointsComplete() {
		for svc, old := range st.endpoints {
			next[svc] = union(old, next[svc])
		}
	}
	for svc, addrs := range next {
		if !slices.Equal(addrs, st.endpoints[svc]) {
			if err := p.SetEndpoints(svc, addrs); err != nil {
				log.Warn("bad endpoints ignored", observe.KeyService, svc, observe.KeyError, err)
			}
		}
	}
	for svc := range st.endpoints {
		if _, ok := next[svc]; !ok {
			_ = p.SetEndpoints(svc, nil)
		}
	}
	st.endpoints = next
	st.configured = true
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// denyMessage turns a denied (or, in audit mode, would-be-denied) request
// into the report the control plane's audit trail keeps.
func denyMessage(e *proxy.Event, st *sidecarState) *apiv1.Deny {
	st.mu.Lock()
	version := st.policyVersion
	st.mu.Unlock()
	mode := e.Mode
	if e.Decision == "audit-deny" {
		mode = "audit"
	}
	return &apiv1.Deny{
		Time: e.Time.UnixNano(), Source: e.Source, Destination: e.Destination, Port: int32(e.Port), //nolint:gosec // a TCP port: 0-65535
		Method: clip(e.Method, maxDenyField), Path: clip(e.Path, maxDenyField), Policy: e.Policy, Rule: e.Rule, Mode: mode, PolicyVersion: version,
	}
}

// trafficCounts reads active connections and total requests from the
// sidecar's own metrics, the single source of truth.
func trafficCounts(g prometheus.Gatherer) (active, total int64) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "meshward_active_connections":
				active += int64(m.GetGauge().GetValue())
			case "meshward_requests_total", "meshward_tcp_connections_total":
				total += int64(m.GetCounter().GetValue())
			}
		}
	}
	return active, total
}

// serveAdmin serves /metrics, /healthz (the process runs), /readyz (it
// holds an unexpired SVID and the control plane's first update, as Envoy
// is not ready before its first configuration) and /endpoints (the
// registry it routes by, as JSON).
func serveAdmin(ctx context.Context, ln net.Listener, reg *prometheus.Registry, src x509svid.Source, st *sidecarState, taps *tapHub) error {
	mux := http.NewServeMux()
	mux.Handle("GET /tap", taps)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s, err := src.GetX509SVID()
		if err != nil || time.Now().After(s.Certificates[0].NotAfter) {
			http.Error(w, "no valid SVID", http.StatusServiceUnavailable)
			return
		}
		if !st.isConfigured() {
			http.Error(w, "waiting for the control plane's first update (policy and endpoints)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /endpoints", func(w http.ResponseWriter, _ *http.Request) {
		b, err := st.endpointsJSON()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

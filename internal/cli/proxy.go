package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity/source"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/proxy"
	"meshward.dev/meshward/internal/proxy/workloadapi"
)

type proxyOptions struct {
	service     string
	namespace   string
	control     string
	trustDomain string
	inbound     string
	app         string
	protocol    string
	port        int
	upstreams   []string
	httpProxy   string
	admin       string
	workloadAPI string
}

func (o *proxyOptions) validate() ([]proxy.Upstream, error) {
	if o.service == "" {
		return nil, usageErrf("--service is required")
	}
	if o.trustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
			return nil, usageErrf("--trust-domain: %v", err)
		}
	}
	if os.Getenv("MESHWARD_TOKEN") == "" {
		return nil, usageErrf("set MESHWARD_TOKEN to a join token (meshward token create --service %s); it is read from the environment so it never shows in ps", o.service)
	}
	var ups []proxy.Upstream
	for _, u := range o.upstreams {
		name, rest, ok := strings.Cut(u, "=")
		if !ok || name == "" || rest == "" {
			return nil, usageErrf("--upstream %q: want SERVICE=HOST:PORT[/PROTOCOL]", u)
		}
		addr, proto, _ := strings.Cut(rest, "/")
		ups = append(ups, proxy.Upstream{Service: name, Listen: addr, Protocol: proxy.Protocol(proto)})
	}
	return ups, nil
}

func newProxyCmd(g *globalOptions) *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy --service NAME --control HOST:PORT",
		Short: "Run one sidecar: mTLS in and out, policy, Workload API",
		Long: `Run the sidecar of one service instance. It bootstraps its identity with the
join token in MESHWARD_TOKEN, then renews it by itself. Inbound it terminates
mTLS (TLS 1.3, client certificate required) and asks the policy for every
connection or request; outbound it gives the app a plaintext loopback listener
per upstream and originates mTLS to the upstream's sidecars, checking that they
hold exactly the upstream's identity. It keeps serving on cached certificates
and policy while the control plane is unreachable.`,
		Example: `  MESHWARD_TOKEN=$(meshward token create --service catalog) \
  meshward proxy --service catalog --control 127.0.0.1:7443 \
      --inbound 127.0.0.1:15002 --app 127.0.0.1:8082 --protocol http \
      --upstream payments=127.0.0.1:9004 --admin 127.0.0.1:15102 \
      --workload-api .meshward/sockets/catalog.sock`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ups, err := o.validate()
			if err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runProxy(cmd.Context(), o, ups, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.service, "service", "", "service this sidecar belongs to (required)")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of the service")
	f.StringVar(&o.control, "control", "127.0.0.1:7443", "control plane address")
	f.StringVar(&o.trustDomain, "trust-domain", "", "require this trust domain (default: the control plane's)")
	f.StringVar(&o.inbound, "inbound", "", "mTLS listen address for callers (empty: no inbound side)")
	f.StringVar(&o.app, "app", "", "the app's plaintext loopback address")
	f.StringVar(&o.protocol, "protocol", "http", "what the app speaks: http, http2, grpc or tcp")
	f.IntVar(&o.port, "port", 0, "service port that policies name (default: the app's port)")
	f.StringArrayVar(&o.upstreams, "upstream", nil, "SERVICE=HOST:PORT[/PROTOCOL]: a plaintext loopback listener for calls to SERVICE (repeatable)")
	f.StringVar(&o.httpProxy, "http-proxy", "", "plaintext HTTP proxy address where the app calls http://SERVICE/...")
	f.StringVar(&o.admin, "admin", "127.0.0.1:0", "admin address for /metrics, /healthz and /readyz (loopback)")
	f.StringVar(&o.workloadAPI, "workload-api", "", "unix socket path for the SPIFFE Workload API (empty: off)")
	return cmd
}

// sidecarState is what the watch stream has told the sidecar, for reports.
type sidecarState struct {
	mu            sync.Mutex
	policyVersion string
	policyError   string
	endpoints     map[string][]string
}

func runProxy(ctx context.Context, o *proxyOptions, ups []proxy.Upstream, log *slog.Logger) error {

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	adminLn, err := net.Listen("tcp", o.admin)
	if err != nil {
		return usageErrf("--admin: %v", err)
	}
	defer adminLn.Close()

	var (
		p     *proxy.Proxy
		ready = make(chan struct{})
		state = &sidecarState{endpoints: map[string][]string{}}
	)
	var td spiffeid.TrustDomain
	if o.trustDomain != "" {
		td = spiffeid.RequireTrustDomainFromString(o.trustDomain)
	}
	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	src, err := source.New(bootCtx, source.Config{
		ControlAddr: o.control,
		Token:       os.Getenv("MESHWARD_TOKEN"),
		TrustDomain: td,
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
			return r
		},
		OnUpdate: func(u *apiv1.MeshUpdate) {
			<-ready
			applyUpdate(p, state, u, log)
		},
	})
	if err != nil {
		return fmt.Errorf("bootstrap identity: %w", err)
	}
	defer src.Close()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshward_svid_expiry_timestamp_seconds",
		Help: "When the sidecar's current X.509-SVID expires (unix seconds).",
	}, func() float64 {
		if s, err := src.GetX509SVID(); err == nil {
			return float64(s.Certificates[0].NotAfter.Unix())
		}
		return 0
	}))

	p, err = proxy.New(proxy.Config{
		Service: o.service, Namespace: o.namespace, TrustDomain: src.TrustDomain(),
		SVID: src, Bundle: src,
		InboundAddr: o.inbound, AppAddr: o.app, AppProtocol: proxy.Protocol(o.protocol), Port: o.port,
		Upstreams: ups, HTTPProxyAddr: o.httpProxy,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return usageErr(err)
	}
	close(ready)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return serveAdmin(ctx, adminLn, reg, src) })
	if o.workloadAPI != "" {
		ws, err := workloadapi.Listen(o.workloadAPI, src, log.With(observe.KeyComponent, "workloadapi"))
		if err != nil {
			return err
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

// applyUpdate hands a watch-stream update to the proxy. A policy that does
// not compile is rejected whole: the old one stays in force, and the next
// report tells the control plane why.
func applyUpdate(p *proxy.Proxy, st *sidecarState, u *apiv1.MeshUpdate, log *slog.Logger) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if pol := u.GetPolicy(); pol != nil && pol.Version != st.policyVersion {
		files := make([]policy.File, 0, len(pol.Files))
		for _, f := range pol.Files {
			files = append(files, policy.File{Name: f.Name, Data: f.Content})
		}
		e, err := policy.Compile(files, policy.Options{})
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

// serveAdmin serves /metrics, /healthz (the process runs) and /readyz (it
// holds an unexpired SVID).
func serveAdmin(ctx context.Context, ln net.Listener, reg *prometheus.Registry, src *source.Source) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s, err := src.GetX509SVID()
		if err != nil || time.Now().After(s.Certificates[0].NotAfter) {
			http.Error(w, "no valid SVID", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
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

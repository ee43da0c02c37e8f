package sidecar

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/gotune"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/proxy"
)

// ErrUsage marks command-line errors (exit code 2).
var ErrUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

type proxyOptions struct {
	service     string
	namespace   string
	control     string
	trustDomain string
	bundle      string
	inbound     string
	app         string
	protocol    string
	upgrades    []string
	port        int
	upstreams   []string
	httpProxy   string
	admin       string
	// insecureAdmin lets the admin endpoints (unauthenticated: /tap shows
	// live requests) listen beyond loopback.
	insecureAdmin bool
	workloadAPI   string
	workloadUID   int
	workloadApp   int // fd
	cores         int
	telemetry     telemetryFlags
}

// telemetryFlags are --access-log, --metrics and --tracing: each overrides
// the MeshConfig's spec.telemetry only when given.
type telemetryFlags struct{ accessLog, metrics, tracing bool }

func (t telemetryFlags) overrides(f interface{ Changed(string) bool }) policy.Telemetry {
	var o policy.Telemetry
	if f.Changed("access-log") {
		o.AccessLog = new(t.accessLog)
	}
	if f.Changed("metrics") {
		o.Metrics = new(t.metrics)
	}
	if f.Changed("tracing") {
		o.Tracing = new(t.tracing)
	}
	return o
}

func (o *proxyOptions) validate() ([]proxy.Upstream, error) {
	if o.service == "" {
		return nil, usagef("--service is required")
	}
	if o.trustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
			return nil, usagef("--trust-domain: %v", err)
		}
	}
	if os.Getenv("MESHWARD_TOKEN") == "" {
		return nil, usagef("set MESHWARD_TOKEN to a join token (meshward token create --service %s); it is read from the environment so it never shows in ps", o.service)
	}
	if err := proxy.CheckLoopback(o.admin); err != nil && !o.insecureAdmin {
		return nil, usagef("--admin: %v: the admin endpoints are unauthenticated (/tap shows live requests); keep them on loopback, or pass --insecure-admin to expose them", err)
	}
	var ups []proxy.Upstream
	for _, u := range o.upstreams {
		name, rest, ok := strings.Cut(u, "=")
		if !ok || name == "" || rest == "" {
			return nil, usagef("--upstream %q: want SERVICE=HOST:PORT[/PROTOCOL]", u)
		}
		addr, proto, _ := strings.Cut(rest, "/")
		ups = append(ups, proxy.Upstream{Service: name, Listen: addr, Protocol: proxy.Protocol(proto)})
	}
	return ups, nil
}

// Command is the sidecar's command line, shared by `meshward proxy` and the
// lean meshward-proxy binary. logger builds the process logger from the
// caller's log flags.
func Command(logger func(io.Writer) (*slog.Logger, error)) *cobra.Command {
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
      --workload-api .meshward/sockets/catalog.sock

  # the same, logging every allowed request too (off by default)
  meshward proxy --service catalog --access-log ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ups, err := o.validate()
			if err != nil {
				return err
			}
			// Keep the runtime's sysmon awake (internal/gotune): this
			// returns only when already done or not possible.
			tuneErr := gotune.Reexec()
			// A sidecar shares its machine with its app: like Linkerd's
			// proxy, it uses one core unless told otherwise, and never more
			// than the runtime found (CPUs, cgroup limit). Measured on 2
			// cores (docs/benchmarks.md): one core costs ~20% less CPU per
			// request; two (--cores 2) keep the added p99 under bursts
			// within about 0.5 ms of an nginx pair, where one core adds
			// 1-3 ms. GOMAXPROCS wins.
			if o.cores > 0 && os.Getenv("GOMAXPROCS") == "" {
				runtime.GOMAXPROCS(min(o.cores, runtime.GOMAXPROCS(0)))
			}
			log, err := logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if tuneErr != nil {
				log.Warn("could not re-execute with the sidecar's runtime setting; running untuned",
					slog.String("godebug", gotune.Setting), slog.Any(observe.KeyError, tuneErr))
			}
			if o.insecureAdmin && proxy.CheckLoopback(o.admin) != nil {
				log.Warn("INSECURE: the admin endpoints (/metrics, /tap with live requests) listen beyond loopback with no authentication", "admin", o.admin)
			}
			var apps io.Reader
			if o.workloadApp > 0 {
				apps = os.NewFile(uintptr(o.workloadApp), "workload-app")
			}
			var bundle []byte
			if o.bundle != "" {
				if bundle, err = os.ReadFile(o.bundle); err != nil {
					return usagef("--bundle: %v", err)
				}
				if _, err := session.ParseBundle(bundle); err != nil {
					return usagef("--bundle %s: %v", o.bundle, err)
				}
			}
			var td spiffeid.TrustDomain
			if o.trustDomain != "" {
				td = spiffeid.RequireTrustDomainFromString(o.trustDomain)
			}
			err = Run(cmd.Context(), Config{
				Service: o.service, Namespace: o.namespace, Control: o.control, Token: os.Getenv("MESHWARD_TOKEN"), Bundle: bundle,
				TrustDomain: td, Inbound: o.inbound, App: o.app, Protocol: proxy.Protocol(o.protocol), AllowUpgrades: o.upgrades, Port: o.port,
				Upstreams: ups, HTTPProxy: o.httpProxy, Admin: o.admin, WorkloadAPI: o.workloadAPI,
				WorkloadUID: o.workloadUID, WorkloadApp: apps, Logger: log, Telemetry: o.telemetry.overrides(cmd.Flags()),
			})
			if errors.Is(err, ErrConfig) {
				return fmt.Errorf("%w: %w", ErrUsage, err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.service, "service", "", "service this sidecar belongs to (required)")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of the service")
	f.StringVar(&o.control, "control", "127.0.0.1:7443", "control plane address")
	f.StringVar(&o.trustDomain, "trust-domain", "", "require this trust domain (default: the control plane's)")
	f.StringVar(&o.bundle, "bundle", "", "PEM file of CA roots the control plane must chain to at bootstrap, checked as well as the join token's pin")
	f.StringVar(&o.inbound, "inbound", "", "mTLS listen address for callers (empty: no inbound side)")
	f.StringVar(&o.app, "app", "", "the app's plaintext loopback address")
	f.StringVar(&o.protocol, "protocol", "http", "what the app speaks: http, http2, grpc or tcp")
	f.StringArrayVar(&o.upgrades, "allow-upgrade", nil, "an HTTP/1.1 Upgrade protocol forwarded to the app besides websocket, e.g. tcp (repeatable; h2c is always refused)")
	f.IntVar(&o.port, "port", 0, "service port that policies name (default: the app's port)")
	f.StringArrayVar(&o.upstreams, "upstream", nil, "SERVICE=HOST:PORT[/PROTOCOL]: a plaintext loopback listener for calls to SERVICE (repeatable)")
	f.StringVar(&o.httpProxy, "http-proxy", "", "plaintext HTTP proxy address where the app calls http://SERVICE/...")
	f.StringVar(&o.admin, "admin", "127.0.0.1:0", "admin address for /metrics, /healthz, /readyz, /endpoints and /tap (loopback)")
	f.BoolVar(&o.insecureAdmin, "insecure-admin", false, "allow --admin on a non-loopback address (unauthenticated; a warning is logged)")
	f.StringVar(&o.workloadAPI, "workload-api", "", "unix socket path for the SPIFFE Workload API (empty: off)")
	f.IntVar(&o.workloadUID, "workload-uid", os.Geteuid(), "the app's user ID: it owns the Workload API socket, and callers running as another user are refused")
	f.IntVar(&o.workloadApp, "workload-app-fd", 0, "file descriptor on which 'meshward up' names the app's process (\"PID START\" per run, \"-\" when it exits): only it and its descendants get the SVID")
	f.IntVar(&o.cores, "cores", 1, "CPU cores the sidecar uses at most (0: all; 2 lowers tail latency under bursts for ~20% more CPU per request; the GOMAXPROCS variable overrides)")
	f.BoolVar(&o.telemetry.accessLog, "access-log", policy.DefaultAccessLog, "log one line per allowed request or connection (denies are always logged; default: the MeshConfig's spec.telemetry.accessLog, off)")
	f.BoolVar(&o.telemetry.metrics, "metrics", policy.DefaultMetrics, "record the per-request metrics and the dashboard's traffic counters (deny counters are always kept; default: spec.telemetry.metrics, on)")
	f.BoolVar(&o.telemetry.tracing, "tracing", policy.DefaultTracing, "export a span per HTTP/gRPC request when OTEL_EXPORTER_OTLP_ENDPOINT is set (default: spec.telemetry.tracing, on)")
	return cmd
}

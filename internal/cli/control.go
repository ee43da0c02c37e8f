package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/dashboard"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/proxy"
	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

type controlOptions struct {
	dataDir         string
	store           string // as store.Open takes it; "": the bolt file in the data dir
	listen          string
	trustDomain     string
	workloadTTL     time.Duration
	intermediateTTL time.Duration
	rootTTL         time.Duration
	// http is where the dashboard and the control plane's /metrics are
	// served ("" for nowhere).
	http string
	// mesh, when set (by `up`), lets policy checks verify that targets
	// exist.
	mesh *config.Mesh
	// insecureDashboard lets the dashboard (unauthenticated, read-only)
	// listen beyond loopback.
	insecureDashboard bool
}

// where names a setting for an error: the flag of `control`, or the
// mesh.yaml field under `up`.
func (o *controlOptions) where(flag, field string) string {
	if o.mesh != nil && o.mesh.File != "" {
		return fmt.Sprintf("%s: %s", o.mesh.File, field)
	}
	return flag
}

func (o *controlOptions) validate() error {
	if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
		return usageErrf("--trust-domain %q: %v", o.trustDomain, err)
	}
	if o.listen == "" {
		return usageErrf("--listen is required")
	}
	if o.http != "" && !o.insecureDashboard {
		if err := proxy.CheckLoopback(o.http); err != nil {
			return usageErrf("--dashboard: %v: the dashboard has no authentication; keep it on loopback (reach it with ssh -L), or pass --insecure-dashboard", err)
		}
	}
	return nil
}

func newControlCmd(g *globalOptions) *cobra.Command {
	o := &controlOptions{}
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane: CA, registry and policy distribution",
		Long: `Run the control plane in the foreground. On first start it creates the CA
(root + intermediate) and an admin credential in <data-dir>/admin, which the CLI
uses for admin calls (token create, ca, policy apply, identity ban, status).
Set MESHWARD_STORE_KEY (32 bytes: 64 hex characters) to encrypt the CA keys at
rest. --store puts the state elsewhere than <data-dir>/meshward.db.`,
		Example: `  meshward control --data-dir .meshward --listen 127.0.0.1:7443 --trust-domain shop.local
  MESHWARD_STORE_KEY=$(openssl rand -hex 32) meshward control --data-dir /var/lib/meshward
  meshward control --data-dir /var/lib/meshward --store bolt:///srv/meshward/meshward.db`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runControl(cmd.Context(), o, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir, "where the CA, the store and the admin credential live")
	f.StringVar(&o.store, "store", "", "where the CA, tokens, certificate log, audit trail and policies are kept: bolt:///path/to/file.db or a file path (default <data-dir>/"+bolt.FileName+")")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7443", "address of the gRPC (mTLS) API")
	f.StringVar(&o.trustDomain, "trust-domain", "meshward.local", "SPIFFE trust domain of the mesh")
	f.DurationVar(&o.workloadTTL, "workload-ttl", ca.DefaultWorkloadTTL, "lifetime of workload certificates")
	f.DurationVar(&o.intermediateTTL, "intermediate-ttl", ca.DefaultIntermediateTTL, "lifetime of the intermediate CA (rotated at half-life)")
	f.DurationVar(&o.rootTTL, "root-ttl", ca.DefaultRootTTL, "lifetime of a new root CA")
	f.StringVar(&o.http, "dashboard", "127.0.0.1:9900", "address of the web dashboard and /metrics (loopback; empty: off)")
	f.BoolVar(&o.insecureDashboard, "insecure-dashboard", false, "allow --dashboard on a non-loopback address (it has no authentication; a warning is logged)")
	return cmd
}

func runControl(ctx context.Context, o *controlOptions, log *slog.Logger) error {
	cp, err := newControlPlane(ctx, o, log)
	if err != nil {
		return err
	}
	defer cp.close()
	return cp.run(ctx)
}

// controlPlane is the control plane server plus its HTTP side (dashboard
// and /metrics).
type controlPlane struct {
	srv   *control.Server
	web   *http.Server
	webLn net.Listener
	close func()
}

// run serves until ctx is cancelled.
func (cp *controlPlane) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cp.srv.Run(ctx) })
	if cp.web != nil {
		g.Go(func() error {
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = cp.web.Shutdown(sctx)
			}()
			if err := cp.web.Serve(cp.webLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

// DashboardURL is where the dashboard is served ("" when off).
func (cp *controlPlane) dashboardURL() string {
	if cp.webLn == nil {
		return ""
	}
	return "http://" + cp.webLn.Addr().String() + "/"
}

// newControlPlane opens the store and the CA and builds the server (used
// by `control` and `up`).
func newControlPlane(ctx context.Context, o *controlOptions, log *slog.Logger) (*controlPlane, error) {
	td := spiffeid.RequireTrustDomainFromString(o.trustDomain)
	var sealer *store.Sealer
	if k := os.Getenv("MESHWARD_STORE_KEY"); k != "" {
		key, err := store.ParseSealKey(k)
		if err != nil {
			return nil, usageErrf("MESHWARD_STORE_KEY: %v", err)
		}
		if sealer, err = store.NewSealer(key); err != nil {
			return nil, err
		}
	}
	st, err := openStore(ctx, o, sealer)
	if err != nil {
		return nil, err
	}
	authority, err := ca.New(ctx, ca.Config{
		TrustDomain: td, Store: st, Logger: log.With("component", "ca"),
		WorkloadTTL: o.workloadTTL, IntermediateTTL: o.intermediateTTL, RootTTL: o.rootTTL,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := control.New(ctx, control.Config{
		TrustDomain: td, Listen: o.listen, DataDir: o.dataDir, Store: st, CA: authority,
		CheckPolicy: policyChecker(o.mesh, td), Logger: log.With("component", "control"), Registerer: reg,
	})
	if err != nil {
		st.Close()
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, usageErrf("%s %s: address already in use: is another control plane running (meshward status)? Stop it or choose another address", o.where("--listen", "spec.control.listen"), o.listen)
		}
		return nil, err
	}
	cp := &controlPlane{srv: srv, close: func() { st.Close() }}
	if o.http != "" {
		dash, err := dashboard.New(dashboard.Config{Source: srv, Mesh: o.mesh, Logger: log.With("component", "dashboard")})
		if err != nil {
			st.Close()
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.Handle("/", dash)
		ln, err := net.Listen("tcp", o.http)
		if err != nil {
			st.Close()
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, usageErrf("%s %s: address already in use: is another control plane running (meshward status)? Stop it or choose another address", o.where("--dashboard", "spec.dashboard.listen"), o.http)
			}
			return nil, usageErrf("%s %s: %v", o.where("--dashboard", "spec.dashboard.listen"), o.http, err)
		}
		if proxy.CheckLoopback(o.http) != nil {
			log.Warn("INSECURE: the dashboard and /metrics listen beyond loopback with no authentication", "addr", o.http)
		}
		cp.web = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		cp.webLn = ln
		log.Info("dashboard", "url", cp.dashboardURL())
	}
	log.Info("admin credential", "dir", fmt.Sprintf("%s/%s", o.dataDir, control.AdminDir))
	return cp, nil
}

// openStore opens the store --store names, by default the bolt file in
// the data dir. The data dir is made private (0700) either way: the admin
// credential lives there.
func openStore(ctx context.Context, o *controlOptions, sealer *store.Sealer) (store.Store, error) {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := os.Chmod(o.dataDir, 0o700); err != nil { //nolint:gosec // a directory needs x to be entered
		return nil, fmt.Errorf("open store: %w", err)
	}
	loc := o.store
	if loc == "" {
		loc = filepath.Join(o.dataDir, bolt.FileName)
	}
	st, err := store.Open(ctx, loc, store.Options{Sealer: sealer})
	if errors.Is(err, store.ErrLocation) {
		return nil, usageErrf("--store: %v", err)
	}
	return st, err
}

// policyChecker compiles a policy set with the same engine the sidecars
// run, so the control plane never distributes what a sidecar would reject.
// registryServices names the control plane's list of known services in
// policy errors; apply adds how to accept a service not deployed yet.
const registryServices = "the control plane's registry"

// localOptions are the options the CLI compiles a policies directory with
// (lint, test, diff, apply's local check, up): the mesh file when there is
// one (nil: no service names checked, trust domain from the MeshConfig or
// the default), the real clock. The control plane's checker adds its trust
// domain and registry; the sidecar (sidecar.CompilePolicy) and the
// dashboard (dashboard.CompilePolicy) compile pushed versions with what
// they know. All of them call policy.Compile.
func localOptions(mesh *config.Mesh) policy.Options { return policy.Options{Mesh: mesh} }

// compileLocal compiles a policies directory as the CLI does.
func compileLocal(files []policy.File, mesh *config.Mesh) (*policy.Engine, error) {
	return policy.Compile(files, localOptions(mesh))
}

func policyChecker(mesh *config.Mesh, td spiffeid.TrustDomain) control.PolicyCheck {
	// The CLI's compile (localOptions), plus the control plane's trust
	// domain and the registry's services.
	return func(files []policy.File, known []string) (string, error) {
		opts := localOptions(mesh)
		opts.TrustDomain, opts.Services, opts.ServicesFrom = td.Name(), known, registryServices
		e, err := policy.Compile(files, opts)
		if err != nil {
			return "", err
		}
		return e.Version(), nil
	}
}

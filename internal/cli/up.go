package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/examples"
	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/demo"
	"meshward.dev/meshward/internal/localmesh"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
)

type upOptions struct {
	file      string
	demo      bool
	dataDir   string
	fresh     bool
	control   string
	dashboard string
}

func (o *upOptions) validate() error {
	if o.demo && o.file != "" {
		return usageErrf("--demo runs the bundled shop; it does not take -f")
	}
	return nil
}

func newUpCmd(g *globalOptions) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up [-f mesh.yaml] [--demo]",
		Short: "Run a whole local mesh in the foreground: control plane, sidecars, apps",
		Long: `Start the control plane, apply the policies directory, mint a join token per
service, start one sidecar per service and then the app, and stream everything
with a prefix per component. Ctrl-C stops the apps, then the sidecars, then the
control plane. Crashed apps and sidecars are restarted with backoff. Re-running
reuses the data dir (same CA, same identities) unless --fresh.

Apps learn their ports from the environment: MESHWARD_LISTEN (where to listen),
MESHWARD_UPSTREAM_<SERVICE> (the sidecar listener for calls to SERVICE),
SPIFFE_ENDPOINT_SOCKET (the Workload API), MESHWARD_SERVICE, MESHWARD_NAMESPACE,
MESHWARD_TRUST_DOMAIN and MESHWARD_PORT. Apps get only these, their service's
env:, and PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TERM,
COLORTERM, NO_COLOR and TMPDIR from meshward's environment (never
MESHWARD_STORE_KEY or any other MESHWARD_* variable). A service's Workload API
serves its SVID only to its own app and the app's descendants. Run as root,
a service's user: runs its app as that user, and the data dir is closed to
it (docs/local-mode.md).`,
		Example: `  # the bundled demo shop: frontend on http://127.0.0.1:8080
  meshward up --demo

  # your own mesh
  meshward up -f mesh.yaml --fresh`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runUp(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "mesh file (default mesh.yaml)")
	f.BoolVar(&o.demo, "demo", false, "run the bundled demo shop")
	f.StringVar(&o.dataDir, "data-dir", "", "data dir (default: the mesh file's spec.dataDir; .meshward for --demo)")
	f.BoolVar(&o.fresh, "fresh", false, "start from an empty data dir: new CA, new identities")
	f.StringVar(&o.control, "control", "", "control plane listen address (default: the mesh file's spec.control.listen)")
	f.StringVar(&o.dashboard, "dashboard", "", "dashboard listen address (default: the mesh file's spec.dashboard.listen)")
	return cmd
}

func runUp(ctx context.Context, g *globalOptions, o *upOptions, stdout io.Writer) error {
	mesh, err := loadUpMesh(o)
	if err != nil {
		return err
	}
	// A user: that cannot be honoured (not root, no such user) stops up
	// before anything starts.
	if err := localmesh.CheckUsers(mesh); err != nil {
		return usageErr(err)
	}
	if err := refuseServiceAccounts(mesh); err != nil {
		return usageErr(err)
	}
	// Every port up will listen on is free, or nothing starts.
	if err := localmesh.CheckPorts(mesh); err != nil {
		return usageErr(err)
	}
	dataDir := mesh.DataDirPath()
	if o.fresh {
		if err := os.RemoveAll(dataDir); err != nil {
			return err
		}
		if o.demo {
			// The demo files live in the data dir: write them again.
			if mesh, err = loadUpMesh(o); err != nil {
				return err
			}
		}
	}
	out := localmesh.NewOutput(stdout, isTerminal(stdout))
	for _, s := range mesh.Services {
		out.Reserve(len(s.Name) + len("-proxy"))
	}
	log, err := g.logger(out.Writer("control"))
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	// The control plane runs in this process; it stops last.
	ctrlCtx, stopControl := context.WithCancel(context.Background())
	defer stopControl()
	// The policies are checked before anything starts; their MeshConfig
	// sets the CA's certificate lifetimes.
	files, engine, err := loadMeshPolicies(mesh)
	if err != nil {
		return err
	}
	certs := policy.DefaultMeshConfig().Certificates
	if engine != nil {
		certs = engine.Config().Certificates
	}
	cp, err := newControlPlane(ctx, &controlOptions{
		dataDir: dataDir, listen: mesh.Control.Listen, trustDomain: mesh.TrustDomain, mesh: mesh, http: mesh.Dashboard.Listen,
		workloadTTL: certs.WorkloadTTL, intermediateTTL: certs.IntermediateTTL, rootTTL: certs.RootTTL,
	}, log)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer cp.close()
	srv := cp.srv
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- cp.run(ctrlCtx) }()

	admin, err := control.DialAdmin(dataDir, srv.Addr().String())
	if err != nil {
		return err
	}
	defer admin.Close()
	rev, err := applyMeshPolicies(ctx, admin, mesh, files, engine)
	if err != nil {
		return err
	}
	sup, err := localmesh.New(localmesh.Config{
		Mesh: mesh, Executable: exe, Sidecar: sidecarCommand(exe), ControlAddr: srv.Addr().String(), Admin: admin, Out: out,
		SidecarArgs: []string{"--log-format", g.logFormat, "--log-level", g.logLevel},
		OnReady:     func() { printBanner(out, mesh, srv.Addr().String(), cp.dashboardURL(), rev, o.demo) },
		OnNotReady:  func(problems []string) { printNotReady(out, mesh, problems) },
	})
	if err != nil {
		return err
	}
	supErr := sup.Run(ctx)
	stopControl()
	select {
	case err := <-ctrlDone:
		if err != nil && supErr == nil {
			supErr = err
		}
	case <-time.After(10 * time.Second):
	}
	out.Printf("meshward | stopped\n")
	return supErr
}

// sidecarCommand prefers the lean meshward-proxy binary next to meshward
// (make build puts it there): it needs less memory per sidecar. Otherwise
// sidecars run as `meshward proxy`.
func sidecarCommand(exe string) []string {
	lean := filepath.Join(filepath.Dir(exe), "meshward-proxy")
	if fi, err := os.Stat(lean); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return []string{lean}
	}
	return []string{exe, "proxy"}
}

// loadUpMesh reads the mesh file, or writes the bundled demo into the data
// dir and reads it from there (so its policies can be tested and edited).
func loadUpMesh(o *upOptions) (*config.Mesh, error) {
	if !o.demo {
		file := o.file
		if file == "" {
			file = "mesh.yaml"
		}
		m, err := config.LoadMesh(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrf("no mesh file %s: write one (see examples/demo/mesh.yaml and docs/configuration.md), pass -f FILE, or try meshward up --demo", file)
		}
		if err != nil {
			return nil, usageErr(err)
		}
		if o.dataDir != "" {
			m.DataDir = absPath(o.dataDir)
		}
		o.override(m)
		return m, nil
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = defaultDataDir
	}
	dir := filepath.Join(dataDir, "demo")
	if err := writeDemo(dir); err != nil {
		return nil, err
	}
	m, err := config.LoadMesh(filepath.Join(dir, "mesh.yaml"))
	if err != nil {
		return nil, err
	}
	m.DataDir = absPath(dataDir)
	o.override(m)
	return m, nil
}

// override applies the listen-address flags to the mesh.
func (o *upOptions) override(m *config.Mesh) {
	if o.control != "" {
		m.Control.Listen = o.control
	}
	if o.dashboard != "" {
		m.Dashboard.Listen = o.dashboard
	}
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// writeDemo copies the embedded demo shop into dir, once: edits a user
// makes there (to try a policy change) survive the next `up --demo`, and
// --fresh starts over.
func writeDemo(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "mesh.yaml")); err == nil {
		return nil
	}
	return fs.WalkDir(examples.Demo, "demo", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, strings.TrimPrefix(path, "demo"))
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := examples.Demo.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
}

// loadMeshPolicies reads and compiles the mesh's policies directory (nil,
// nil when the mesh names none).
func loadMeshPolicies(mesh *config.Mesh) ([]policy.File, *policy.Engine, error) {
	dir := mesh.PoliciesDir()
	if dir == "" {
		return nil, nil, nil
	}
	files, err := policy.ReadDir(dir)
	if err != nil {
		return nil, nil, usageErr(err)
	}
	e, err := compileLocal(files, mesh)
	if err != nil {
		return nil, nil, usageErr(err)
	}
	return files, e, nil
}

// applyMeshPolicies pushes the compiled policies unless that exact version
// is already in force, and returns the revision in force.
func applyMeshPolicies(ctx context.Context, admin *control.AdminClient, mesh *config.Mesh, files []policy.File, e *policy.Engine) (int64, error) {
	if e == nil {
		return 0, nil
	}
	dir := mesh.PoliciesDir()
	st, err := admin.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
	if err != nil {
		return 0, err
	}
	if st.Policy != nil && st.Policy.Version == e.Version() {
		return st.Policy.Revision, nil
	}
	req := &apiv1.ApplyPolicyRequest{Files: policywire.Proto(files), GitCommit: gitCommit(ctx, dir, files)}
	v, err := admin.ApplyPolicy(ctx, req)
	if err != nil {
		return 0, err
	}
	return v.Revision, nil
}

func printBanner(out *localmesh.Output, mesh *config.Mesh, control, dashboardURL string, rev int64, isDemo bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  meshward: mesh %q is up (trust domain %s)\n", mesh.Name, mesh.TrustDomain)
	fmt.Fprintf(&b, "  control plane  %s   data dir %s\n", control, mesh.DataDirPath())
	if dashboardURL != "" {
		fmt.Fprintf(&b, "  dashboard      %s\n", dashboardURL)
	}
	fmt.Fprintf(&b, "  policies       %s (revision %d)\n", mesh.PoliciesDir(), rev)
	for _, s := range mesh.Services {
		if s.Expose != "" {
			fmt.Fprintf(&b, "  %-14s http://%s\n", s.Name, s.Expose)
		}
	}
	if isDemo {
		fmt.Fprintf(&b, "\n  try:\n")
		fmt.Fprintf(&b, "    open http://%s                       # the shop: press the buttons\n", exposeOf(mesh, "frontend"))
		fmt.Fprintf(&b, "    curl http://%s/api/products          # allowed: frontend -> catalog\n", exposeOf(mesh, "frontend"))
		fmt.Fprintf(&b, "    curl http://%s/api/forbidden         # denied: frontend -> payments (403)\n", exposeOf(mesh, "frontend"))
		fmt.Fprintf(&b, "    meshward status --data-dir %s\n", mesh.DataDirPath())
		fmt.Fprintf(&b, "    meshward policy test %s\n", mesh.PoliciesDir())
	}
	b.WriteString("\n")
	out.Printf("%s", b.String())
}

// printNotReady is said instead of the banner: "is up" means every app
// listens and every sidecar routes, so a mesh with a dead or silent app
// says which and why.
func printNotReady(out *localmesh.Output, mesh *config.Mesh, problems []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  meshward: mesh %q is NOT ready:\n", mesh.Name)
	for _, p := range problems {
		fmt.Fprintf(&b, "    - %s\n", p)
	}
	b.WriteString("  the rest of the mesh keeps running; fix the service and restart meshward up (Ctrl-C stops it)\n\n")
	out.Printf("%s", b.String())
}

func exposeOf(mesh *config.Mesh, name string) string {
	if s, ok := mesh.Service(name); ok && s.Expose != "" {
		return s.Expose
	}
	return "127.0.0.1:8080"
}

func newDemoAppCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "demo-app NAME",
		Short:  "Run one service of the demo shop (started by meshward up --demo)",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return demo.Run(cmd.Context(), args[0], log)
		},
	}
}

// refuseServiceAccounts refuses a service whose identity account differs
// from its name: the sidecar's policy compiler, its upstream identity checks
// and the control plane's registry still take the account for the service
// name, so such a mesh would validate and then never be routable. Refused
// (an input error naming the field) until those follow; Kubernetes mode
// needs them.
func refuseServiceAccounts(m *config.Mesh) error {
	var errs config.ErrorList
	for i, s := range m.Services {
		if s.ServiceAccount != "" && s.ServiceAccount != s.Name {
			f := fmt.Sprintf("spec.services[%d].serviceAccount", i)
			errs = append(errs, &config.Error{File: m.File, Line: m.LineOf(f), Field: f,
				Msg: fmt.Sprintf("%q differs from the service's name %q: meshward up does not run such a service yet (its sidecar and the control plane's registry still use the name); remove it", s.ServiceAccount, s.Name)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

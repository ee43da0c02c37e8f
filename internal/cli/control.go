package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

type controlOptions struct {
	dataDir         string
	listen          string
	trustDomain     string
	workloadTTL     time.Duration
	intermediateTTL time.Duration
	rootTTL         time.Duration
	// mesh, when set (by `up`), lets policy checks verify that targets
	// exist.
	mesh *config.Mesh
}

func (o *controlOptions) validate() error {
	if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
		return usageErrf("--trust-domain %q: %v", o.trustDomain, err)
	}
	if o.listen == "" {
		return usageErrf("--listen is required")
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
rest.`,
		Example: `  meshward control --data-dir .meshward --listen 127.0.0.1:7443 --trust-domain shop.local
  MESHWARD_STORE_KEY=$(openssl rand -hex 32) meshward control --data-dir /var/lib/meshward`,
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
	f.StringVar(&o.listen, "listen", "127.0.0.1:7443", "address of the gRPC (mTLS) API")
	f.StringVar(&o.trustDomain, "trust-domain", "meshward.local", "SPIFFE trust domain of the mesh")
	f.DurationVar(&o.workloadTTL, "workload-ttl", ca.DefaultWorkloadTTL, "lifetime of workload certificates")
	f.DurationVar(&o.intermediateTTL, "intermediate-ttl", ca.DefaultIntermediateTTL, "lifetime of the intermediate CA (rotated at half-life)")
	f.DurationVar(&o.rootTTL, "root-ttl", ca.DefaultRootTTL, "lifetime of a new root CA")
	return cmd
}

func runControl(ctx context.Context, o *controlOptions, log *slog.Logger) error {
	srv, closeFn, err := newControlPlane(ctx, o, log)
	if err != nil {
		return err
	}
	defer closeFn()
	return srv.Run(ctx)
}

// newControlPlane opens the store and the CA and builds the server (used
// by `control` and `up`).
func newControlPlane(ctx context.Context, o *controlOptions, log *slog.Logger) (*control.Server, func(), error) {
	td := spiffeid.RequireTrustDomainFromString(o.trustDomain)
	var sealer *store.Sealer
	if k := os.Getenv("MESHWARD_STORE_KEY"); k != "" {
		key, err := store.ParseSealKey(k)
		if err != nil {
			return nil, nil, usageErrf("MESHWARD_STORE_KEY: %v", err)
		}
		if sealer, err = store.NewSealer(key); err != nil {
			return nil, nil, err
		}
	}
	st, err := bolt.Open(o.dataDir, sealer)
	if err != nil {
		return nil, nil, err
	}
	authority, err := ca.New(ctx, ca.Config{
		TrustDomain: td, Store: st, Logger: log.With("component", "ca"),
		WorkloadTTL: o.workloadTTL, IntermediateTTL: o.intermediateTTL, RootTTL: o.rootTTL,
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	srv, err := control.New(ctx, control.Config{
		TrustDomain: td, Listen: o.listen, DataDir: o.dataDir, Store: st, CA: authority,
		CheckPolicy: policyChecker(o.mesh), Logger: log.With("component", "control"),
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	log.Info("admin credential", "dir", fmt.Sprintf("%s/%s", o.dataDir, control.AdminDir))
	return srv, func() { st.Close() }, nil
}

// policyChecker compiles a policy set with the same engine the sidecars
// run, so the control plane never distributes what a sidecar would reject.
func policyChecker(mesh *config.Mesh) control.PolicyCheck {
	return func(files []store.PolicyFile) (string, error) {
		e, err := policy.Compile(policyFiles(files), policy.Options{Mesh: mesh})
		if err != nil {
			return "", err
		}
		return e.Version(), nil
	}
}

func policyFiles(files []store.PolicyFile) []policy.File {
	out := make([]policy.File, len(files))
	for i, f := range files {
		out[i] = policy.File{Name: f.Name, Data: f.Content}
	}
	return out
}

package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
)

type statusOptions struct {
	admin  adminOptions
	output string
	now    func() time.Time
}

func newStatusCmd(_ *globalOptions) *cobra.Command {
	o := &statusOptions{now: time.Now}
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what the mesh runs: workloads, identities, certificates, policy, CA",
		Example: `  meshward status
  meshward status -o json | jq '.workloads[] | {spiffe_id, svid_not_after}'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return runStatus(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(c)
	addOutputFlag(c, &o.output)
	return c
}

func runStatus(ctx context.Context, o *statusOptions, stdout io.Writer) error {
	st, err := adminCall(ctx, &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.MeshStatusResponse, error) {
		return c.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
	})
	if err != nil {
		return err
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, newStatusView(st))
	}
	now := o.now()
	fmt.Fprintf(stdout, "control plane: healthy, trust domain %s, up %s\n", st.TrustDomain, now.Sub(time.Unix(st.StartedAt, 0)).Round(time.Second))
	if p := st.Policy; p != nil {
		fmt.Fprintf(stdout, "policy: revision %d, version %s\n", p.Revision, short(p.Version, 12))
	} else {
		fmt.Fprintln(stdout, "policy: none applied (every call is denied)")
	}
	for _, cert := range st.Ca.GetCertificates() {
		if cert.State == "active" {
			fmt.Fprintf(stdout, "CA %s: expires %s (in %s)\n", cert.Role, time.Unix(cert.NotAfter, 0).UTC().Format(time.RFC3339), time.Unix(cert.NotAfter, 0).Sub(now).Round(time.Minute))
		}
	}
	if st.Ca.GetPhase() != "idle" {
		fmt.Fprintf(stdout, "root rotation: %s (%d workloads lagging)\n", st.Ca.GetPhase(), len(st.Ca.GetLagging()))
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tIDENTITY\tINBOUND\tCERT SERIAL\tCERT EXPIRES IN\tPOLICY\tCONNS\tREQUESTS\tHEALTH")
	for _, w := range st.Workloads {
		health := "ok"
		if w.PolicyError != "" {
			health = "policy rejected: " + w.PolicyError
		} else if now.Sub(time.Unix(w.LastReport, 0)) > 30*time.Second {
			health = "stale"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", w.Service, w.SpiffeId, w.InboundAddr, short(w.SvidSerial, 12),
			time.Unix(w.SvidNotAfter, 0).Sub(now).Round(time.Second), short(w.PolicyVersion, 12), w.ActiveConnections, w.TotalRequests, health)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Workloads) == 0 {
		fmt.Fprintln(stdout, "(no sidecar connected)")
	}
	for _, b := range st.Banned {
		fmt.Fprintf(stdout, "banned: %s\n", b)
	}
	return nil
}

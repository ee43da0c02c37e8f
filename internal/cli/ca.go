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

type caOptions struct {
	admin  adminOptions
	output string
	root   bool
	now    func() time.Time
}

func newCACmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Inspect and rotate the certificate authority",
		Example: `  meshward ca show
  meshward ca rotate --root && meshward ca status`}
	show := &caOptions{now: time.Now}
	showCmd := &cobra.Command{
		Use:   "show",
		Short: "Show the trust bundle roots and the signing intermediate, with expiry",
		Example: `  meshward ca show
  meshward ca show -o json | jq '.certificates[] | {role, not_after}'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(show.output); err != nil {
				return err
			}
			return runCAStatus(cmd.Context(), show, cmd.OutOrStdout(), false)
		},
	}
	status := &caOptions{now: time.Now}
	statusCmd := &cobra.Command{
		Use:     "status",
		Short:   "Follow a root rotation: its phase and which workloads hold it up",
		Example: `  meshward ca rotate --root && watch meshward ca status`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(status.output); err != nil {
				return err
			}
			return runCAStatus(cmd.Context(), status, cmd.OutOrStdout(), true)
		},
	}
	rotate := &caOptions{now: time.Now}
	rotateCmd := &cobra.Command{
		Use:   "rotate [--root]",
		Short: "Rotate the intermediate now, or start a staged root rotation",
		Long: `Without --root, a new intermediate signs from now on; issued certificates stay
valid. With --root, a staged rotation starts: the new root joins the trust
bundle (prepare), signs once every connected workload holds it (activate), and
the old root leaves the bundle only after every certificate it signed has
expired (retire). Each phase advances only on proof from the workloads; follow
it with 'meshward ca status'.`,
		Example: `  meshward ca rotate
  meshward ca rotate --root`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(rotate.output); err != nil {
				return err
			}
			return runCARotate(cmd.Context(), rotate, cmd.OutOrStdout())
		},
	}
	for c, o := range map[*cobra.Command]*caOptions{showCmd: show, statusCmd: status, rotateCmd: rotate} {
		o.admin.addFlags(c)
		addOutputFlag(c, &o.output)
	}
	rotateCmd.Flags().BoolVar(&rotate.root, "root", false, "start a staged root rotation instead of rotating the intermediate")
	cmd.AddCommand(showCmd, statusCmd, rotateCmd)
	return cmd
}

func runCAStatus(ctx context.Context, o *caOptions, stdout io.Writer, rotation bool) error {
	st, err := adminCall(ctx, &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.CAStatusResponse, error) {
		return c.CAStatus(ctx, &apiv1.CAStatusRequest{})
	})
	if err != nil {
		return err
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, newCAView(st))
	}
	printCA(stdout, st, o.now(), rotation)
	return nil
}

func runCARotate(ctx context.Context, o *caOptions, stdout io.Writer) error {
	st, err := adminCall(ctx, &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.CAStatusResponse, error) {
		return c.RotateCA(ctx, &apiv1.RotateCARequest{Root: o.root})
	})
	if err != nil {
		return err
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, newCAView(st))
	}
	if o.root {
		fmt.Fprintln(stdout, "root rotation started; follow it with: meshward ca status")
	} else {
		fmt.Fprintln(stdout, "intermediate rotated")
	}
	printCA(stdout, st, o.now(), o.root)
	return nil
}

func printCA(w io.Writer, st *apiv1.CAStatusResponse, now time.Time, rotation bool) {
	fmt.Fprintf(w, "trust domain: %s\n\n", st.TrustDomain)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tSTATE\tSERIAL\tNOT AFTER\tEXPIRES IN\tSHA-256")
	for _, c := range st.Certificates {
		na := time.Unix(c.NotAfter, 0).UTC()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Role, c.State, short(c.Serial, 16), na.Format(time.RFC3339), na.Sub(now).Round(time.Second), short(c.Fingerprint, 16))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nnext intermediate rotation: %s\n", time.Unix(st.NextIntermediateRotation, 0).UTC().Format(time.RFC3339))
	if !rotation && st.Phase == "idle" {
		return
	}
	fmt.Fprintf(w, "root rotation phase: %s (%s)\n", st.Phase, st.PhaseDetail)
	if st.RetireAfter > 0 {
		fmt.Fprintf(w, "old root leaves the bundle after: %s\n", time.Unix(st.RetireAfter, 0).UTC().Format(time.RFC3339))
	}
	if len(st.Lagging) > 0 {
		fmt.Fprintln(w, "waiting for:")
		for _, l := range st.Lagging {
			fmt.Fprintf(w, "  %s: %s\n", l.SpiffeId, l.Reason)
		}
	}
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

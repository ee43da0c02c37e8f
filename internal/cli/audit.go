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

type auditOptions struct {
	admin  adminOptions
	since  time.Duration
	output string
	now    func() time.Time
}

func newAuditCmd(_ *globalOptions) *cobra.Command {
	o := &auditOptions{now: time.Now}
	c := &cobra.Command{
		Use:   "audit [--since 1h]",
		Short: "What was denied and what admins changed, from the control plane's audit trail",
		Long: `List the audit trail: requests the sidecars denied (with the deciding rule and
the policy version) and admin actions (tokens created, policies applied, CA
rotations, bans), oldest first.`,
		Example: `  meshward audit --since 10m
  meshward audit -o json | jq 'select(.action == "request.deny")'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			if o.since <= 0 {
				return usageErrf("--since must be positive")
			}
			return runAudit(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(c)
	c.Flags().DurationVar(&o.since, "since", time.Hour, "how far back")
	c.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json (one object per line)")
	return c
}

func runAudit(ctx context.Context, o *auditOptions, stdout io.Writer) error {
	resp, err := adminCall(ctx, &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.AuditResponse, error) {
		return c.Audit(ctx, &apiv1.AuditRequest{Since: o.now().Add(-o.since).UnixNano()})
	})
	if err != nil {
		return err
	}
	if o.output == "json" {
		for _, e := range resp.Events {
			if err := writeJSONLine(stdout, map[string]any{
				"time": time.Unix(0, e.Time).UTC(), "action": e.Action, "actor": e.Actor,
				"subject": e.Subject, "detail": e.Detail, "outcome": e.Outcome,
			}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tOUTCOME\tACTOR\tSUBJECT\tDETAIL")
	for _, e := range resp.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", time.Unix(0, e.Time).UTC().Format(time.RFC3339), e.Action, e.Outcome, e.Actor, e.Subject, e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(resp.Events) == 0 {
		fmt.Fprintf(stdout, "(nothing in the last %s)\n", o.since)
	}
	return nil
}

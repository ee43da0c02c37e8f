package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
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
			if err := checkOutput(o.output); err != nil {
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
	addOutputFlag(c, &o.output)
	return c
}

// runAudit prints the trail page by page as the control plane streams it,
// so its size never meets a message limit (or this process's memory).
func runAudit(ctx context.Context, o *auditOptions, stdout io.Writer) error {
	c, err := o.admin.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Audit(ctx, &apiv1.AuditRequest{Since: o.now().Add(-o.since).UnixNano()})
	if err != nil {
		return o.admin.rpcErr(err)
	}
	var tw *tabwriter.Writer
	if o.output == formatText {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tACTION\tOUTCOME\tACTOR\tSUBJECT\tDETAIL")
	}
	n := 0
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return o.admin.rpcErr(err)
		}
		for _, e := range page.GetEvents() {
			n++
			if tw == nil {
				if err := writeRecord(stdout, o.output, newAuditView(e)); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", time.Unix(0, e.Time).UTC().Format(time.RFC3339), e.Action, e.Outcome, e.Actor, e.Subject, e.Detail)
		}
		if tw != nil {
			// One page at a time: tabwriter aligns within what it holds.
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintf(stdout, "(nothing in the last %s)\n", o.since)
		}
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/policy"
)

// policyRemoteCmds are the `policy` subcommands that talk to the control
// plane (apply, history, rollback); newPolicyCmd adds them.
func policyRemoteCmds(_ *globalOptions) []*cobra.Command {
	return []*cobra.Command{newPolicyApplyCmd(), newPolicyHistoryCmd(), newPolicyRollbackCmd()}
}

type policyRemoteOptions struct {
	admin  adminOptions
	output string
}

func (o *policyRemoteOptions) addFlags(c *cobra.Command) {
	o.admin.addFlags(c)
	c.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
}

func newPolicyApplyCmd() *cobra.Command {
	o := &policyRemoteOptions{}
	c := &cobra.Command{
		Use:   "apply DIR",
		Short: "Validate a policies directory and push it to every sidecar (admin)",
		Long: `Validate DIR (a bad set is rejected whole; the running policy stays in force),
then store it as a new version with its content hash, and the git commit when
DIR is in a git work tree. Sidecars receive it over the watch stream and switch
atomically.`,
		Example: `  meshward policy apply ./policies
  meshward policy history`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			return runPolicyApply(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	o.addFlags(c)
	return c
}

func runPolicyApply(ctx context.Context, o *policyRemoteOptions, dir string, stdout io.Writer) error {
	files, err := policy.ReadDir(dir)
	if err != nil {
		return usageErr(err)
	}
	// Check locally first: the same compiler the control plane and the
	// sidecars run, with errors naming file, line and field.
	if _, err := policy.Compile(files, policy.Options{}); err != nil {
		return usageErr(err)
	}
	c, err := o.admin.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	req := &apiv1.ApplyPolicyRequest{GitCommit: gitCommit(ctx, dir)}
	for _, f := range files {
		req.Files = append(req.Files, &apiv1.PolicyFile{Name: f.Name, Content: f.Data})
	}
	v, err := c.ApplyPolicy(ctx, req)
	if err != nil {
		return o.admin.rpcErr(err)
	}
	if o.output == "json" {
		return writeJSON(stdout, v)
	}
	fmt.Fprintf(stdout, "applied revision %d (version %s, %d files)\n", v.Revision, short(v.Version, 12), v.Files)
	return nil
}

// gitCommit is the HEAD commit of the work tree holding dir ("-dirty" when
// it has changes), or "" outside git.
func gitCommit(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--", ".").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += "-dirty"
	}
	return commit
}

func newPolicyHistoryCmd() *cobra.Command {
	o := &policyRemoteOptions{}
	c := &cobra.Command{
		Use:     "history",
		Short:   "List applied policy versions (admin)",
		Example: `  meshward policy history -o json`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			h, err := adminCall(cmd.Context(), &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.PolicyHistoryResponse, error) {
				return c.PolicyHistory(ctx, &apiv1.PolicyHistoryRequest{})
			})
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), h)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tVERSION\tAPPLIED\tBY\tGIT COMMIT\tFILES\tNOTE")
			for _, v := range h.Versions {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Revision, short(v.Version, 12), time.Unix(v.AppliedAt, 0).UTC().Format(time.RFC3339), v.AppliedBy, short(v.GitCommit, 12), v.Files, v.Note)
			}
			return tw.Flush()
		},
	}
	o.addFlags(c)
	return c
}

func newPolicyRollbackCmd() *cobra.Command {
	o := &policyRemoteOptions{}
	c := &cobra.Command{
		Use:   "rollback REVISION",
		Short: "Apply the files of an earlier revision again, as a new revision (admin)",
		Example: `  meshward policy history
  meshward policy rollback 3`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "text", "json"); err != nil {
				return err
			}
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || rev <= 0 {
				return usageErrf("REVISION must be a positive number from 'meshward policy history', got %q", args[0])
			}
			v, err := adminCall(cmd.Context(), &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.PolicyVersion, error) {
				return c.RollbackPolicy(ctx, &apiv1.RollbackPolicyRequest{Revision: rev})
			})
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back: revision %d now enforces the files of revision %d (version %s)\n", v.Revision, rev, short(v.Version, 12))
			return nil
		},
	}
	o.addFlags(c)
	return c
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
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
	addOutputFlag(c, &o.output)
}

// policyApplyOptions are apply's own flags beside the remote ones.
type policyApplyOptions struct {
	policyRemoteOptions
	dryRun       bool
	message      string
	allowUnknown bool
}

func newPolicyApplyCmd() *cobra.Command {
	o := &policyApplyOptions{}
	c := &cobra.Command{
		Use:   "apply DIR",
		Short: "Validate a policies directory and push it to every sidecar (admin)",
		Long: `Validate DIR (a bad set is rejected whole; the running policy stays in force),
then store it as a new revision and push it to every sidecar, which switch
atomically. A revision is identified by its content hash (version): applying
the same content again makes no new revision. The git commit of DIR is
recorded with it: COMMIT, COMMIT+dirty when a policy file differs from that
commit or is untracked or git-ignored, or nothing outside git.

Targets and sources must name services the control plane knows (it has issued
them an identity, or their sidecar is connected; under meshward up, the mesh
file's services): a typo is an error, not a silent outage. For a service not
deployed yet, pass --allow-unknown-services.`,
		Example: `  # what would change, against what is live; nothing is stored
  meshward policy apply ./policies --dry-run

  meshward policy apply ./policies -m "orders may read the catalog (JIRA-123)"
  meshward policy history`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return runPolicyApply(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	o.addFlags(c)
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "validate on the control plane and show the grants the change adds or removes against the live revision; store nothing")
	c.Flags().StringVarP(&o.message, "message", "m", "", "why: recorded in policy history and the audit trail")
	c.Flags().BoolVar(&o.allowUnknown, "allow-unknown-services", false, "accept targets and sources the control plane has never issued an identity to (services not deployed yet)")
	return c
}

func runPolicyApply(ctx context.Context, o *policyApplyOptions, dir string, stdout io.Writer) error {
	files, err := policy.ReadDir(dir)
	if err != nil {
		return usageErr(err)
	}
	// Check locally first: the same compiler the control plane and the
	// sidecars run, with errors naming file, line and field.
	if _, err := compileLocal(files, nil); err != nil {
		return usageErr(err)
	}
	c, err := o.admin.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	req := &apiv1.ApplyPolicyRequest{Files: policywire.Proto(files), GitCommit: gitCommit(ctx, dir, files), Message: o.message, DryRun: o.dryRun, AllowUnknownServices: o.allowUnknown}
	v, err := c.ApplyPolicy(ctx, req)
	if err != nil {
		if strings.Contains(status.Convert(err).Message(), "is not a service of "+registryServices) {
			err = status.Error(status.Code(err), status.Convert(err).Message()+"\n(the registry lists services the control plane issued an identity to; for one not deployed yet, pass --allow-unknown-services)")
		}
		return o.admin.rpcErr(err)
	}
	if o.dryRun {
		return printDryRun(ctx, o, c, v, files, stdout)
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, newPolicyVersionView(v))
	}
	if v.Unchanged {
		fmt.Fprintf(stdout, "unchanged: revision %d already holds this policy (version %s); nothing applied\n", v.Revision, short(v.Version, 12))
		return nil
	}
	fmt.Fprintf(stdout, "applied revision %d (version %s, %d files, %s)\n", v.Revision, short(v.Version, 12), v.Files, commitText(v.GitCommit))
	return nil
}

// policyDryRunView is `apply --dry-run -o json`: the revision it would
// make and the grants it adds or removes against the live one.
type policyDryRunView struct {
	DryRun      bool               `json:"dry_run"`
	Would       *policyVersionView `json:"would_apply"`
	LiveVersion string             `json:"live_version"` // "" before the first apply
	Widens      bool               `json:"widens"`
	Changes     []policy.Change    `json:"changes"`
}

// printDryRun diffs what apply would make against the live revision, with
// the compiler `policy diff` uses.
func printDryRun(ctx context.Context, o *policyApplyOptions, c *control.AdminClient, v *apiv1.PolicyVersion, files []policy.File, stdout io.Writer) error {
	var liveFiles []policy.File
	liveVersion := ""
	live, err := c.PolicyRevision(ctx, &apiv1.PolicyRevisionRequest{})
	switch {
	case status.Code(err) == codes.NotFound: // nothing applied yet: diff against deny-all
	case err != nil:
		return o.admin.rpcErr(err)
	default:
		liveVersion = live.GetVersion().GetVersion()
		liveFiles = policywire.Files(live.GetFiles())
	}
	// Grants name identities: compile both sides in the control plane's
	// trust domain, as its sidecars do.
	st, err := c.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
	if err != nil {
		return o.admin.rpcErr(err)
	}
	opts := policy.Options{TrustDomain: st.GetTrustDomain()}
	cur, err := policy.Compile(liveFiles, opts)
	if err != nil {
		return fmt.Errorf("the live revision does not compile with this meshward (%w); is the CLI older than the control plane?", err)
	}
	next, err := policy.Compile(files, opts)
	if err != nil {
		return usageErr(err)
	}
	changes := policy.Diff(cur, next, nil)
	widens := false
	for _, ch := range changes {
		widens = widens || ch.Widen
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, policyDryRunView{DryRun: true, Would: newPolicyVersionView(v), LiveVersion: liveVersion, Widens: widens, Changes: orEmpty(changes)})
	}
	if v.Unchanged {
		fmt.Fprintf(stdout, "dry run: unchanged, revision %d already holds this policy (version %s)\n", v.Revision, short(v.Version, 12))
		return nil
	}
	for _, ch := range changes {
		sign := "-"
		if ch.Added {
			sign = "+"
		}
		fmt.Fprintf(stdout, "%s %s\n", sign, ch.Grant)
	}
	fmt.Fprintf(stdout, "dry run: would apply revision %d (version %s, %d files, %s), %d grant change(s); nothing stored\n", v.Revision, short(v.Version, 12), v.Files, commitText(v.GitCommit), len(changes))
	return nil
}

// commitText is a recorded commit for people: "not in git" when none.
func commitText(commit string) string {
	if commit == "" {
		return "not in git"
	}
	return "commit " + short(commit, 12)
}

// gitCommit is the HEAD commit of the work tree holding dir, with "+dirty"
// when what is applied is not exactly that commit: a policy file that
// differs from it, is untracked, or is git-ignored. "" outside git.
func gitCommit(ctx context.Context, dir string, files []policy.File) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	args := []string{"-C", dir, "status", "--porcelain", "--ignored", "--untracked-files=all", "--"}
	for _, f := range files {
		rel, err := filepath.Rel(dir, f.Name)
		if err != nil {
			return commit + "+dirty"
		}
		args = append(args, rel)
	}
	st, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil || len(strings.TrimSpace(string(st))) > 0 {
		commit += "+dirty"
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
			if err := checkOutput(o.output); err != nil {
				return err
			}
			h, err := adminCall(cmd.Context(), &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.PolicyHistoryResponse, error) {
				return c.PolicyHistory(ctx, &apiv1.PolicyHistoryRequest{})
			})
			if err != nil {
				return err
			}
			if o.output != formatText {
				return writeOutput(cmd.OutOrStdout(), o.output, newPolicyHistoryView(h))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tVERSION\tAPPLIED\tBY\tGIT COMMIT\tFILES\tNOTE")
			for _, v := range h.Versions {
				commit := short(v.GitCommit, 12)
				if strings.HasSuffix(v.GitCommit, "+dirty") {
					commit += "+dirty"
				} else if commit == "" {
					commit = "not in git"
				}
				note := strings.TrimPrefix(strings.Join([]string{v.Note, v.Message}, ": "), ": ")
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Revision, short(v.Version, 12), time.Unix(v.AppliedAt, 0).UTC().Format(time.RFC3339), v.AppliedBy, commit, v.Files, note)
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
			if err := checkOutput(o.output); err != nil {
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
			if o.output != formatText {
				return writeOutput(cmd.OutOrStdout(), o.output, newPolicyVersionView(v))
			}
			if v.Unchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "unchanged: the latest revision %d already enforces what revision %d did (version %s)\n", v.Revision, rev, short(v.Version, 12))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back: revision %d now enforces the files of revision %d (version %s)\n", v.Revision, rev, short(v.Version, 12))
			return nil
		},
	}
	o.addFlags(c)
	c.ValidArgsFunction = firstArg(completeRevisions(&o.admin))
	return c
}

package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
)

// newCompletionCmd replaces cobra's default `completion` command with the
// same four generators plus an example in every --help, and makes a typo in
// the shell name a usage error (exit 2) instead of a help page.
func newCompletionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script for bash, zsh, fish or powershell",
		Long: `Print a script that makes the shell complete meshward's commands and flags,
and, from the running mesh, service names (tap, token create --service), SPIFFE
IDs (identity ban, identity unban) and policy revisions (policy rollback). The
dynamic candidates come from the control plane found with --data-dir or
--control (or MESHWARD_DATA_DIR, MESHWARD_CONTROL), asked with a 1s time limit;
when it is unreachable there are no candidates and no error.`,
		Example: `  # bash (needs the bash-completion package), this shell only
  source <(meshward completion bash)

  # zsh, for every new shell
  meshward completion zsh > "${fpath[1]}/_meshward"

  # fish
  meshward completion fish > ~/.config/fish/completions/meshward.fish

  # powershell
  meshward completion powershell | Out-String | Invoke-Expression`,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	var noDesc bool
	for _, sh := range []struct {
		name, example string
		gen           func(root *cobra.Command, w io.Writer, desc bool) error
	}{
		{"bash", `  source <(meshward completion bash)
  meshward completion bash > /etc/bash_completion.d/meshward`,
			func(r *cobra.Command, w io.Writer, desc bool) error { return r.GenBashCompletionV2(w, desc) }},
		{"zsh", `  # once, if completion is not enabled yet: echo "autoload -U compinit; compinit" >> ~/.zshrc
  meshward completion zsh > "${fpath[1]}/_meshward"
  source <(meshward completion zsh)`,
			func(r *cobra.Command, w io.Writer, desc bool) error {
				if desc {
					return r.GenZshCompletion(w)
				}
				return r.GenZshCompletionNoDesc(w)
			}},
		{"fish", `  meshward completion fish > ~/.config/fish/completions/meshward.fish
  meshward completion fish | source`,
			func(r *cobra.Command, w io.Writer, desc bool) error { return r.GenFishCompletion(w, desc) }},
		{"powershell", `  meshward completion powershell | Out-String | Invoke-Expression
  meshward completion powershell >> $PROFILE`,
			func(r *cobra.Command, w io.Writer, desc bool) error {
				if desc {
					return r.GenPowerShellCompletionWithDesc(w)
				}
				return r.GenPowerShellCompletion(w)
			}},
	} {
		c := &cobra.Command{
			Use:               sh.name,
			Short:             "Print the completion script for " + sh.name,
			Example:           sh.example,
			Args:              exactArgs(0),
			ValidArgsFunction: cobra.NoFileCompletions,
			RunE: func(c *cobra.Command, _ []string) error {
				return sh.gen(c.Root(), c.OutOrStdout(), !noDesc)
			},
		}
		c.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave out the description next to each candidate")
		cmd.AddCommand(c)
	}
	return cmd
}

// completionTimeout bounds the whole conversation with the control plane
// behind one completion: a shell waits for it on every Tab.
const completionTimeout = time.Second

// completeFromMesh asks the running control plane for candidates. Any
// failure (no admin credential, control plane down or slow, refused) gives
// no candidates and no output: completion must not hang or print into the
// shell. Candidates are filtered by the word being completed; files are never
// offered.
func completeFromMesh(o *adminOptions, list func(context.Context, *control.AdminClient) ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		c, err := o.dial()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		all, err := list(ctx, c)
		if err != nil {
			cobra.CompDebugln("meshward: completion: "+err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, s := range all {
			if strings.HasPrefix(s, toComplete) {
				out = append(out, s)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// firstArg completes only the first positional argument.
func firstArg(f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

func meshStatus(ctx context.Context, c *control.AdminClient) (*apiv1.MeshStatusResponse, error) {
	return c.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
}

// completeServices lists the services with a connected sidecar, sorted, with
// their sidecar count as the description.
func completeServices(o *adminOptions) cobra.CompletionFunc {
	return completeWorkloadField(o, (*apiv1.WorkloadStatus).GetService)
}

// completeNamespaces lists the namespaces of connected sidecars.
func completeNamespaces(o *adminOptions) cobra.CompletionFunc {
	return completeWorkloadField(o, (*apiv1.WorkloadStatus).GetNamespace)
}

// completeWorkloadField lists the values of one field of the connected
// sidecars, with how many sidecars have each.
func completeWorkloadField(o *adminOptions, field func(*apiv1.WorkloadStatus) string) cobra.CompletionFunc {
	return completeFromMesh(o, func(ctx context.Context, c *control.AdminClient) ([]cobra.Completion, error) {
		st, err := meshStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		n := map[string]int{}
		for _, w := range st.GetWorkloads() {
			if v := field(w); v != "" {
				n[v]++
			}
		}
		return described(n, "sidecar"), nil
	})
}

// completeIdentities lists SPIFFE IDs: for ban, those of connected sidecars
// that are not banned yet; for unban, the banned ones.
func completeIdentities(o *adminOptions, ban bool) cobra.CompletionFunc {
	return completeFromMesh(o, func(ctx context.Context, c *control.AdminClient) ([]cobra.Completion, error) {
		st, err := meshStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		if !ban {
			ids := slices.Clone(st.GetBanned())
			slices.Sort(ids)
			out := make([]cobra.Completion, 0, len(ids))
			for _, id := range slices.Compact(ids) {
				out = append(out, cobra.CompletionWithDesc(id, "banned"))
			}
			return out, nil
		}
		n := map[string]int{}
		for _, w := range st.GetWorkloads() {
			if id := w.GetSpiffeId(); id != "" && !slices.Contains(st.GetBanned(), id) {
				n[id]++
			}
		}
		return described(n, "sidecar"), nil
	})
}

// completeRevisions lists policy revisions, newest first, each described by
// its version, time and note.
func completeRevisions(o *adminOptions) cobra.CompletionFunc {
	return completeFromMesh(o, func(ctx context.Context, c *control.AdminClient) ([]cobra.Completion, error) {
		h, err := c.PolicyHistory(ctx, &apiv1.PolicyHistoryRequest{})
		if err != nil {
			return nil, err
		}
		vs := slices.Clone(h.GetVersions())
		slices.SortFunc(vs, func(a, b *apiv1.PolicyVersion) int { return cmp.Compare(b.GetRevision(), a.GetRevision()) })
		out := make([]cobra.Completion, 0, len(vs))
		for _, v := range vs {
			desc := short(v.GetVersion(), 12) + " " + time.Unix(v.GetAppliedAt(), 0).UTC().Format(time.RFC3339)
			if v.GetNote() != "" {
				desc += " " + v.GetNote()
			}
			out = append(out, cobra.CompletionWithDesc(strconv.FormatInt(v.GetRevision(), 10), desc))
		}
		return out, nil
	})
}

// described turns counted names into sorted candidates described as
// "N sidecar(s)".
func described(n map[string]int, what string) []cobra.Completion {
	names := make([]string, 0, len(n))
	for k := range n {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]cobra.Completion, 0, len(names))
	for _, k := range names {
		out = append(out, cobra.CompletionWithDesc(k, fmt.Sprintf("%d %s(s)", n[k], what)))
	}
	return out
}

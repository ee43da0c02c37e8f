package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policytest"
)

func newPolicyCmd(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "lint, test, diff and apply access policies",
		Long: `Access policies are YAML files kept in git (MeshConfig, AccessPolicy, PolicyTest;
see docs/policy.md). Everything is denied unless a policy allows it. The
commands here run the same compiler and engine as the sidecars, so what
'policy test' passes is what the mesh enforces.`,
		Example: `  meshward policy lint ./policies --mesh mesh.yaml
  meshward policy test ./policies --junit policy-tests.xml
  meshward policy diff main:policies ./policies`,
	}
	c.AddCommand(newPolicyLintCmd(), newPolicyTestCmd(), newPolicyDiffCmd(), newPolicyImportCmd())
	for _, sub := range policyRemoteCmds(g) {
		c.AddCommand(sub)
	}
	return c
}

// policySource is what lint and test read: a policies directory and an
// optional mesh file.
type policySource struct {
	dir  string
	mesh string
}

func (s *policySource) addFlags(c *cobra.Command) {
	c.Flags().StringVar(&s.mesh, "mesh", "", "mesh.yaml: policy targets must be its services; its policies directory is the default DIR")
}

// load reads the mesh (when given) and the policies, returning errors as
// usage errors after printing each on stderr.
func (s *policySource) load(stderr io.Writer) (*policy.Set, *policy.Engine, error) {
	var mesh *config.Mesh
	if s.mesh != "" {
		m, err := config.LoadMesh(s.mesh)
		if err != nil {
			return nil, nil, inputErr(stderr, err)
		}
		mesh = m
		if s.dir == "" {
			s.dir = m.PoliciesDir()
		}
	}
	if s.dir == "" {
		return nil, nil, usageErrf("name the policies directory (DIR) or --mesh mesh.yaml")
	}
	files, err := policy.ReadDir(s.dir)
	if err != nil {
		return nil, nil, usageErr(err)
	}
	set, err := policy.Parse(files, localOptions(mesh))
	if err != nil {
		return nil, nil, inputErr(stderr, err)
	}
	e, err := set.Compile()
	if err != nil {
		return nil, nil, inputErr(stderr, err)
	}
	return set, e, nil
}

// inputErr prints a config.ErrorList one error per line and returns a
// usage error (exit 2) that counts them; other errors pass through as usage
// errors.
func inputErr(stderr io.Writer, err error) error {
	list := config.Errors(err)
	if len(list) == 0 {
		return usageErr(err)
	}
	for _, e := range list {
		fmt.Fprintln(stderr, e.Error())
	}
	return usageErrf("%d error(s); nothing was changed", len(list))
}

type policyLintOptions struct {
	src    policySource
	output string
	strict bool
}

func newPolicyLintCmd() *cobra.Command {
	o := &policyLintOptions{}
	c := &cobra.Command{
		Use:   "lint [DIR]",
		Short: "validate policies and warn about broad, shadowed or unreachable rules",
		Long: `lint validates every MeshConfig, AccessPolicy and PolicyTest in DIR (errors name
file, line and field; exit 2), then warns about weakened mesh defaults,
audit-mode policies, rules that allow any source, any path or all methods,
rules shadowed by an earlier rule or unable to match, and (with --mesh)
services without a policy. Warnings exit 0, or 1 with --strict.`,
		Example: `  meshward policy lint ./policies --mesh mesh.yaml
  meshward policy lint --mesh examples/demo/mesh.yaml --strict -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.src.dir = args[0]
			}
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return runPolicyLint(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.src.addFlags(c)
	addOutputFlag(c, &o.output)
	c.Flags().BoolVar(&o.strict, "strict", false, "exit 1 when there are warnings")
	return c
}

func runPolicyLint(_ context.Context, o *policyLintOptions, stdout, stderr io.Writer) error {
	set, e, err := o.src.load(stderr)
	if err != nil {
		return err
	}
	ws := policy.Lint(set)
	if o.output != formatText {
		v := policyLintView{PolicyVersion: e.Version(), Policies: len(set.Policies), NamesChecked: set.Mesh != nil, Warnings: orEmpty(ws)}
		if err := writeOutput(stdout, o.output, v); err != nil {
			return err
		}
	} else {
		for _, w := range ws {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "%s: %d policies, %d warning(s), version %s\n", o.src.dir, len(set.Policies), len(ws), e.Version())
		if set.Mesh == nil {
			// A misspelt target or source is valid syntax: only the mesh's
			// list of services can catch it.
			fmt.Fprintf(stderr, "note: service names were not checked (targets and sources may name services that do not exist); pass --mesh mesh.yaml to check them\n")
		}
	}
	if o.strict && len(ws) > 0 {
		return errFailed
	}
	return nil
}

type policyTestOptions struct {
	src    policySource
	output string
	junit  string
	color  bool
}

func newPolicyTestCmd() *cobra.Command {
	o := &policyTestOptions{}
	c := &cobra.Command{
		Use:   "test [DIR]",
		Short: "run the PolicyTest cases against the compiled policies",
		Long: `test compiles DIR with the sidecars' compiler and runs every PolicyTest case on
the same engine: it prints pass or fail per case with the rule that decided,
then the rules no case exercised. Exit 1 when a case fails, 2 on invalid input.`,
		Example: `  meshward policy test ./policies
  meshward policy test --mesh examples/demo/mesh.yaml -o json
  meshward policy test ./policies --junit policy-tests.xml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.src.dir = args[0]
			}
			if err := checkOutput(o.output); err != nil {
				return err
			}
			o.color = isTerminal(cmd.OutOrStdout())
			return runPolicyTest(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.src.addFlags(c)
	addOutputFlag(c, &o.output)
	c.Flags().StringVar(&o.junit, "junit", "", "also write JUnit XML to this file, for CI")
	return c
}

func runPolicyTest(_ context.Context, o *policyTestOptions, stdout, stderr io.Writer) error {
	set, e, err := o.src.load(stderr)
	if err != nil {
		return err
	}
	rep, err := policytest.Run(set, e)
	if err != nil {
		return inputErr(stderr, err)
	}
	if len(rep.Results) == 0 {
		fmt.Fprintf(stderr, "warning: no PolicyTest cases in %s\n", o.src.dir)
	}
	if o.junit != "" {
		var buf bytes.Buffer
		if err := rep.WriteJUnit(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(o.junit, buf.Bytes(), 0o644); err != nil { //nolint:gosec // a CI report, not a secret
			return fmt.Errorf("write junit: %w", err)
		}
	}
	if o.output != formatText {
		err = writeOutput(stdout, o.output, newPolicyTestView(rep))
	} else {
		err = rep.WriteText(stdout, o.color)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errFailed
	}
	return nil
}

type policyDiffOptions struct {
	old, new   string
	mesh       string
	output     string
	allowWiden bool
	gitDir     string // working directory for git (tests)
}

func newPolicyDiffCmd() *cobra.Command {
	o := &policyDiffOptions{}
	c := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "show the grants a policy change adds or removes (blast radius)",
		Long: `diff compiles OLD and NEW and lists, as (source -> target:port method path)
grants, what NEW allows that OLD did not (+, access widens) and what it no
longer allows (-). It is computed from the compiled policies, not from the
text. OLD and NEW are directories, or git revisions written REV:DIR (such as
main:policies or HEAD~1:examples/demo/policies). Exit 1 when access widens,
unless --allow-widen.`,
		Example: `  # what does my branch change, compared with main?
  meshward policy diff main:policies ./policies

  # in CI, after review approved the widening
  meshward policy diff HEAD~1:policies HEAD:policies --allow-widen -o json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.old, o.new = args[0], args[1]
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return runPolicyDiff(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&o.mesh, "mesh", "", "mesh.yaml: also consider its services as sources and targets")
	addOutputFlag(c, &o.output)
	c.Flags().BoolVar(&o.allowWiden, "allow-widen", false, "exit 0 even when access widens")
	return c
}

func runPolicyDiff(ctx context.Context, o *policyDiffOptions, stdout, stderr io.Writer) error {
	var mesh *config.Mesh
	if o.mesh != "" {
		m, err := config.LoadMesh(o.mesh)
		if err != nil {
			return inputErr(stderr, err)
		}
		mesh = m
	}
	var engines [2]*policy.Engine
	for i, src := range []string{o.old, o.new} {
		files, err := o.readPolicySource(ctx, src)
		if err != nil {
			return usageErr(err)
		}
		e, err := compileLocal(files, mesh)
		if err != nil {
			return inputErr(stderr, err)
		}
		engines[i] = e
	}
	changes := policy.Diff(engines[0], engines[1], mesh)
	widen, added := 0, 0
	for _, c := range changes {
		if c.Widen {
			widen++
		}
		if c.Added {
			added++
		}
	}
	if o.output != formatText {
		err := writeOutput(stdout, o.output, policyDiffView{
			Old:     policyDiffSideView{Source: o.old, Version: engines[0].Version()},
			New:     policyDiffSideView{Source: o.new, Version: engines[1].Version()},
			Widens:  widen > 0,
			Changes: orEmpty(changes),
		})
		if err != nil {
			return err
		}
	} else {
		for _, c := range changes {
			sign := "-"
			if c.Added {
				sign = "+"
			}
			fmt.Fprintf(stdout, "%s %s\n", sign, c.Grant)
		}
		fmt.Fprintf(stdout, "%d grant(s) added (%d widen access), %d removed (%s -> %s)\n", added, widen, len(changes)-added, o.old, o.new)
	}
	if widen > 0 && !o.allowWiden {
		fmt.Fprintf(stderr, "access widens: %d new grant(s); review them, then pass --allow-widen\n", widen)
		return errFailed
	}
	return nil
}

// readPolicySource reads a directory, or REV:DIR from git.
func (o *policyDiffOptions) readPolicySource(ctx context.Context, src string) ([]policy.File, error) {
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		return policy.ReadDir(src)
	}
	rev, dir, ok := strings.Cut(src, ":")
	if !ok || rev == "" {
		return nil, fmt.Errorf("%q is neither a directory nor a git revision REV:DIR", src)
	}
	if dir == "" {
		dir = "."
	}
	out, err := o.git(ctx, "ls-tree", "-r", "-z", "--name-only", rev, "--", dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	var files []policy.File
	for _, name := range strings.Split(string(out), "\x00") {
		if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" {
			continue
		}
		if hasDotDir(name) {
			continue
		}
		data, err := o.git(ctx, "show", rev+":./"+name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		files = append(files, policy.File{Name: rev + ":" + name, Data: data})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no YAML files at that revision", src)
	}
	return files, nil
}

func hasDotDir(name string) bool {
	parts := strings.Split(filepath.ToSlash(name), "/")
	for _, p := range parts[:len(parts)-1] {
		if strings.HasPrefix(p, ".") && p != "." && p != ".." {
			return true
		}
	}
	return false
}

func (o *policyDiffOptions) git(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...) //nolint:gosec // fixed program, arguments from the user's own command line
	cmd.Dir = o.gitDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, errors.New("git " + args[0] + ": " + msg)
	}
	return out, nil
}

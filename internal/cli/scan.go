package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/cluster"
	"meshward.dev/meshward/internal/scan/manifest"
	"meshward.dev/meshward/internal/scan/report"
	"meshward.dev/meshward/internal/scan/rules"
)

// scanOptions are the flags of `meshward scan`.
type scanOptions struct {
	paths      []string
	output     string // text | json | yaml | sarif
	failOn     string // severity, or "none"
	ignoreFile string
	now        string // hidden: RFC 3339 evaluation time for certificate checks
	kubeconfig string
	context    string
	color      bool
	progress   bool
	verbose    bool
	stdin      io.Reader
	log        *slog.Logger
}

func (o *scanOptions) validate() error {
	if err := checkOutput(o.output, "sarif"); err != nil {
		return err
	}
	if o.failOn != "none" {
		if _, err := scan.ParseSeverity(o.failOn); err != nil {
			return usageErrf("--fail-on: %v (or none)", err)
		}
	}
	if o.now != "" {
		if _, err := time.Parse(time.RFC3339, o.now); err != nil {
			return usageErrf("--now: %q is not an RFC 3339 time", o.now)
		}
	}
	live := o.kubeconfig != "" || o.context != ""
	if len(o.paths) == 0 && !live {
		return usageErrf("scan needs a PATH (file, directory or - for stdin) or --kubeconfig/--context; see 'meshward scan --help'")
	}
	return nil
}

func newScanCmd(g *globalOptions) *cobra.Command {
	o := &scanOptions{}
	cmd := &cobra.Command{
		Use:   "scan PATH...",
		Short: "find mesh misconfigurations in Istio, Linkerd, Consul and meshward config",
		Long: `scan reads Kubernetes YAML or JSON (multi-document files, List kinds, Helm and
kustomize output), Consul agent config and config entries (HCL or JSON), and
meshward's mesh.yaml and policies, or a live cluster (read-only), builds the
mesh's effective state and reports each problem once, on the object to change,
with a rule ID, category, severity, file and line, and a remediation.

Files that hold nothing the scanner reads (kustomization.yaml, Chart.yaml,
values.yaml of other charts, kind cluster configs, unrendered templates) are
skipped and counted; a malformed document of a kind it reads is listed under
NOT READ with file, line and field, and the scan goes on.

Exit code: 0 when no unsuppressed finding is at or above --fail-on and every
document of a kind the scanner reads was read, 1 otherwise, 2 on a usage
error or a path that cannot be read.`,
		Example: `  # scan manifests, fail the CI job on high or critical findings
  meshward scan ./deploy --fail-on high

  # Helm output from stdin, as SARIF for GitHub code scanning
  helm template mesh ./chart | meshward scan - -o sarif > meshward.sarif

  # the rule catalogue
  meshward scan rules`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.paths = args
			o.stdin = cmd.InOrStdin()
			o.color = isTerminal(cmd.OutOrStdout())
			o.progress = isTerminal(cmd.ErrOrStderr())
			if err := o.validate(); err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.log = log
			return runScan(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addOutputFlag(cmd, &o.output, "sarif")
	f.StringVar(&o.failOn, "fail-on", "info", "exit 1 when a finding is at or above this severity (critical, high, medium, low, info) or never (none)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "list the files skipped as holding nothing the scanner reads")
	f.StringVar(&o.ignoreFile, "ignore", "", "file of suppressions, one `RULE-ID [Kind/namespace/name]` a line")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "read a live cluster (read-only) with this kubeconfig")
	f.StringVar(&o.context, "context", "", "kubeconfig context of the live cluster to read")
	f.StringVar(&o.now, "now", "", "evaluation time for certificate checks (RFC 3339)")
	_ = f.MarkHidden("now")
	cmd.AddCommand(newScanRulesCmd())
	return cmd
}

func (o *scanOptions) evalTime() time.Time {
	if o.now == "" {
		return time.Now()
	}
	t, _ := time.Parse(time.RFC3339, o.now)
	return t
}

// runScan loads inputs, runs every rule and writes the report. It returns
// errFailed when a finding reaches --fail-on.
func runScan(ctx context.Context, o *scanOptions, stdout, stderr io.Writer) error {
	var objs []*scan.Object
	var input scan.Input
	if len(o.paths) > 0 {
		files, err := manifest.Files(o.paths)
		if err != nil {
			return usageErr(err)
		}
		for i, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			if o.progress && len(files) > 50 && i%25 == 0 {
				fmt.Fprintf(stderr, "\rscanning %d/%d files", i, len(files))
			}
			got, err := manifest.LoadFile(f, o.stdin)
			if err != nil {
				return usageErr(err) // a file that cannot be read
			}
			objs = append(objs, got.Objects...)
			for _, p := range got.Problems {
				input.Problems = append(input.Problems, scan.InputProblem{File: p.File, Line: p.Line, Field: p.Field, Message: p.Err.Error()})
			}
			if len(got.Objects) == 0 && len(got.Problems) == 0 && got.Skipped > 0 {
				input.Skipped = append(input.Skipped, scan.SkippedFile{File: f, Reason: got.SkipReason})
			}
		}
		input.Files, input.Objects = len(files), len(objs)
		if o.progress && len(files) > 50 {
			fmt.Fprintf(stderr, "\rscanned %d files, %d objects\n", len(files), len(objs))
		}
	}
	if o.kubeconfig != "" || o.context != "" {
		live, err := loadCluster(ctx, o.kubeconfig, o.context, o.log)
		if err != nil {
			return err
		}
		objs = append(objs, live...)
	}
	var ignores []scan.Suppression
	if o.ignoreFile != "" {
		f, err := os.Open(o.ignoreFile)
		if err != nil {
			return usageErrf("--ignore: %v", err)
		}
		ignores, err = scan.ParseIgnoreFile(o.ignoreFile, f)
		f.Close()
		if err != nil {
			return usageErr(err)
		}
	}
	all := rules.All()
	res := scan.Run(scan.NewModel(objs, o.evalTime()), all, ignores)
	res.Input = input
	var err error
	switch o.output {
	case formatJSON, formatYAML:
		err = writeJSONAs(stdout, o.output, func(w io.Writer) error { return report.JSON(w, res) })
	case "sarif":
		err = report.SARIF(stdout, res, all, "")
	default:
		err = report.Text(stdout, res, report.TextOptions{Color: o.color, Verbose: o.verbose})
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if o.failOn == "none" {
		return nil
	}
	if len(input.Problems) > 0 {
		return errFailed // what could not be read may be what is wrong
	}
	threshold, _ := scan.ParseSeverity(o.failOn)
	for _, f := range res.Findings {
		if f.Severity >= threshold {
			return errFailed
		}
	}
	return nil
}

// loadCluster reads a live cluster, read-only. Configuration problems
// (no kubeconfig, unknown context) are usage errors.
func loadCluster(ctx context.Context, kubeconfig, kubeContext string, log *slog.Logger) ([]*scan.Object, error) {
	r, err := cluster.New(kubeconfig, kubeContext, log)
	if err != nil {
		return nil, usageErrf("--kubeconfig/--context: %v", err)
	}
	objs, err := r.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	return objs, nil
}

type scanRulesOptions struct {
	output string // text | json | yaml | markdown
}

func newScanRulesCmd() *cobra.Command {
	o := &scanRulesOptions{}
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "print the scanner's rule catalogue",
		Example: `  meshward scan rules
  meshward scan rules -o json
  meshward scan rules -o markdown > docs/rules.md`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "markdown"); err != nil {
				return err
			}
			return runScanRules(o, cmd.OutOrStdout())
		},
	}
	addOutputFlag(cmd, &o.output, "markdown")
	return cmd
}

func runScanRules(o *scanRulesOptions, stdout io.Writer) error {
	all := rules.All()
	switch o.output {
	case formatJSON, formatYAML:
		return writeJSONAs(stdout, o.output, func(w io.Writer) error { return report.RulesJSON(w, all) })
	case "markdown":
		return report.RulesMarkdown(stdout, all)
	}
	return report.RulesText(stdout, all)
}

package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/policy"
)

// version is set at release builds (-ldflags "-X meshward.dev/meshward/internal/cli.version=v0.3.0");
// a build from a checkout reports the module version Go recorded.
var version = ""

// buildInfo is what `meshward version` reports: what this binary is and
// the secure defaults it applies when nothing is configured.
type buildInfo struct {
	Version   string        `json:"version"`
	Commit    string        `json:"commit"`
	Modified  bool          `json:"modified"` // built from a work tree with uncommitted changes
	GoVersion string        `json:"go_version"`
	Platform  string        `json:"platform"`
	Defaults  buildDefaults `json:"defaults"`
}

type buildDefaults struct {
	TrustDomain       string `json:"trust_domain"`
	MTLS              string `json:"mtls"`
	DefaultAction     string `json:"default_action"`
	PathNormalization string `json:"path_normalization"`
	WorkloadTTL       string `json:"workload_ttl"`
	IntermediateTTL   string `json:"intermediate_ttl"`
	RootTTL           string `json:"root_ttl"`
}

func readBuildInfo() buildInfo {
	d := policy.DefaultMeshConfig()
	b := buildInfo{
		Version: version, Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Defaults: buildDefaults{
			TrustDomain: d.TrustDomain, MTLS: d.MTLS, DefaultAction: d.DefaultAction, PathNormalization: d.PathNormalization,
			WorkloadTTL: d.Certificates.WorkloadTTL.String(), IntermediateTTL: d.Certificates.IntermediateTTL.String(),
			RootTTL: d.Certificates.RootTTL.String(),
		},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

func (b buildInfo) short() string {
	commit := b.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if b.Modified {
		commit += "+dirty"
	}
	return fmt.Sprintf("meshward %s (commit %s, %s, %s)", b.Version, commit, b.GoVersion, b.Platform)
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit, Go version and built-in defaults",
		Example: `  meshward version
  meshward version -o json
  meshward --version`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return writeVersion(cmd.OutOrStdout(), readBuildInfo(), output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func writeVersion(w io.Writer, b buildInfo, output string) error {
	if output != formatText {
		return writeOutput(w, output, b)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n\nbuilt-in defaults (what a mesh gets with no configuration):\n", b.short())
	d := b.Defaults
	for _, kv := range [][2]string{
		{"trust domain", d.TrustDomain}, {"mtls", d.MTLS}, {"default action", d.DefaultAction},
		{"path normalization", d.PathNormalization}, {"workload certificate", d.WorkloadTTL},
		{"intermediate CA", d.IntermediateTTL}, {"root CA", d.RootTTL},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

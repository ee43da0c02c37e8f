package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestUsageErrorsExit2 walks the whole command tree: an unknown flag on any
// command, and an unknown subcommand of any group, is a usage error (exit 2)
// that names what was wrong, never exit 1 or a help page with exit 0.
func TestUsageErrorsExit2(t *testing.T) {
	var cases [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Name() == "help" || c.Name() == "completion" && len(path) == 1 {
			return
		}
		cases = append(cases, append(append([]string{}, path...), "--no-such-flag"))
		if c.HasSubCommands() {
			cases = append(cases, append(append([]string{}, path...), "no-such-command"))
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRootCmd(io.Discard, io.Discard), nil)
	if len(cases) < 30 {
		t.Fatalf("walked only %d cases; the command tree is not what this test expects", len(cases))
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stderr strings.Builder
			err := Execute(context.Background(), args, io.Discard, &stderr)
			if got := ExitCode(err); got != exitUsage {
				t.Fatalf("exit code %d, want %d (usage error); stderr: %s", got, exitUsage, stderr.String())
			}
			last := args[len(args)-1]
			if !strings.Contains(stderr.String(), strings.TrimLeft(last, "-")) {
				t.Fatalf("stderr does not name %q: %s", last, stderr.String())
			}
		})
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	var stderr strings.Builder
	err := Execute(context.Background(), []string{"polcy"}, io.Discard, &stderr)
	if ExitCode(err) != exitUsage || !strings.Contains(stderr.String(), `did you mean "policy"`) {
		t.Fatalf("exit %d, stderr %q; want exit 2 and a suggestion", ExitCode(err), stderr.String())
	}
	stderr.Reset()
	err = Execute(context.Background(), []string{"ca"}, io.Discard, &stderr)
	if ExitCode(err) != exitUsage || !strings.Contains(stderr.String(), "needs a subcommand") {
		t.Fatalf("a group without a subcommand: exit %d, stderr %q; want exit 2", ExitCode(err), stderr.String())
	}
}

func TestBanSuggestsTheSPIFFEID(t *testing.T) {
	_, errOut, code := runCLI(t, "identity", "ban", "orders")
	if code != exitUsage || !strings.Contains(errOut, "spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/orders") {
		t.Fatalf("exit %d, stderr %q; want exit 2 and the SPIFFE ID form of orders", code, errOut)
	}
}

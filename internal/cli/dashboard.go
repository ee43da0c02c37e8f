package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"meshward.dev/meshward/internal/config"
)

// defaultDashboard is where `meshward control` serves the dashboard by
// default (and the demo mesh's spec.dashboard.listen).
const defaultDashboard = "127.0.0.1:9900"

type dashboardOptions struct {
	file   string
	addr   string
	noOpen bool
	output string

	getenv func(string) string
	open   func(url string) error // opens a browser (xdg-open)
	client *http.Client
}

func (o *dashboardOptions) validate() error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if o.addr != "" && o.file != "" {
		return usageErrf("--addr and -f both say where the dashboard is; give one")
	}
	if o.addr != "" {
		if _, _, err := net.SplitHostPort(o.addr); err != nil {
			return usageErrf("--addr %q: want host:port: %v", o.addr, err)
		}
	}
	return nil
}

func newDashboardCmd(_ *globalOptions) *cobra.Command {
	o := &dashboardOptions{getenv: os.Getenv, open: xdgOpen, client: &http.Client{Timeout: 2 * time.Second}}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Open the web dashboard of a running mesh",
		Long: `Print the URL of the control plane's web dashboard (the service graph,
identities and certificates, the policy matrix, denials and findings) after
checking that it answers, and open it in a browser when there is a display.
The address is --addr, else the mesh file's spec.dashboard.listen (-f, or
./mesh.yaml when it exists), else ` + defaultDashboard + ` (meshward up --demo and
meshward control).`,
		Example: `  meshward dashboard
  meshward dashboard -f mesh.yaml --no-open
  meshward dashboard --addr 127.0.0.1:9900 -o json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runDashboard(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "mesh file whose spec.dashboard.listen to open (default ./mesh.yaml if present)")
	f.StringVar(&o.addr, "addr", "", "dashboard address host:port (default "+defaultDashboard+")")
	f.BoolVar(&o.noOpen, "no-open", false, "print the URL only; do not start a browser")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// dashboardURL resolves where the dashboard is.
func (o *dashboardOptions) dashboardURL() (string, error) {
	addr := o.addr
	if addr == "" {
		file := o.file
		if file == "" {
			if _, err := os.Stat("mesh.yaml"); err == nil {
				file = "mesh.yaml"
			}
		}
		addr = defaultDashboard
		if file != "" {
			m, err := config.LoadMesh(file)
			if err != nil {
				return "", usageErr(err)
			}
			if m.Dashboard.Listen == "" {
				return "", usageErrf("%s: spec.dashboard.listen is empty: this mesh serves no dashboard", file)
			}
			addr = m.Dashboard.Listen
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageErrf("dashboard address %q: %v", addr, err)
	}
	// A wildcard listen address is reached on loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/", nil
}

func runDashboard(ctx context.Context, o *dashboardOptions, stdout, stderr io.Writer) error {
	url, err := o.dashboardURL()
	if err != nil {
		return err
	}
	if err := checkDashboard(ctx, o.client, url); err != nil {
		return fmt.Errorf("no dashboard answers at %s (%w); start one with `meshward up` or `meshward control`", url, err)
	}
	display := o.getenv("DISPLAY") != "" || o.getenv("WAYLAND_DISPLAY") != ""
	opened := false
	if !o.noOpen && display {
		if err := o.open(url); err != nil {
			fmt.Fprintf(stderr, "meshward: could not open a browser (%v); open %s yourself\n", err, url)
		} else {
			opened = true
		}
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, dashboardView{URL: url, Opened: opened})
	}
	fmt.Fprintln(stdout, url)
	return nil
}

// checkDashboard asks the control plane's /healthz next to the dashboard.
func checkDashboard(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return ue.Unwrap()
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

// xdgOpen starts the desktop's browser on url and does not wait for it.
func xdgOpen(url string) error {
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return err
	}
	cmd := exec.Command(path, url)
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

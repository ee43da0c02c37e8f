package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/proxy"
)

type tapOptions struct {
	admin    adminOptions
	source   string
	path     string
	decision string
	max      int
	output   string
}

func newTapCmd(_ *globalOptions) *cobra.Command {
	o := &tapOptions{}
	c := &cobra.Command{
		Use:   "tap SERVICE",
		Short: "Watch live requests through a service's sidecars",
		Long: `Stream every request and connection that SERVICE's sidecars handle, inbound
(who called it, and what policy decided) and outbound (what it called): source,
destination, method, path, status, latency, decision and rule. A gRPC call's
status is the HTTP status and its grpc-status, the call's real outcome:
200/0 succeeded, 200/5 failed with NOT_FOUND (other: not a gRPC code; none:
no grpc-status). Bodies are never shown. Stops on Ctrl-C, or after --max
events.`,
		Example: `  meshward tap payments
  meshward tap payments --decision deny -o json
  meshward tap catalog --source frontend --path /products`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			switch o.decision {
			case "", "allow", "deny", "audit-deny":
			default:
				return usageErrf("--decision must be allow, deny or audit-deny, got %q", o.decision)
			}
			return runTap(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(c)
	c.ValidArgsFunction = firstArg(completeServices(&o.admin))
	c.Flags().StringVar(&o.source, "source", "", "only callers whose identity contains this")
	c.Flags().StringVar(&o.path, "path", "", "only paths with this prefix")
	c.Flags().StringVar(&o.decision, "decision", "", "only this decision: allow, deny or audit-deny")
	c.Flags().IntVar(&o.max, "max", 0, "stop after this many events (0: run until Ctrl-C)")
	addOutputFlag(c, &o.output)
	return c
}

func runTap(ctx context.Context, o *tapOptions, service string, stdout io.Writer) error {
	c, err := o.admin.dial()
	if err != nil {
		return err
	}
	st, err := c.MeshStatus(ctx, &apiv1.MeshStatusRequest{})
	c.Close()
	if err != nil {
		return o.admin.rpcErr(err)
	}
	var admins []string
	for _, w := range st.Workloads {
		if w.Service == service && w.AdminAddr != "" {
			admins = append(admins, w.AdminAddr)
		}
	}
	if len(admins) == 0 {
		return usageErrf("no sidecar of service %q is connected (see meshward status)", service)
	}
	q := url.Values{}
	for k, v := range map[string]string{"source": o.source, "path": o.path, "decision": o.decision} {
		if v != "" {
			q.Set(k, v)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan *proxy.Event)
	var wg sync.WaitGroup
	errs := make(chan error, len(admins))
	for _, a := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- streamTap(ctx, "http://"+a+"/tap?"+q.Encode(), events)
		}()
	}
	go func() { wg.Wait(); close(events) }()
	if o.output == formatText {
		fmt.Fprintf(stdout, "%-12s %-8s %-42s %-10s %-7s %-28s %-6s %-9s %-11s %s\n", "TIME", "DIR", "SOURCE", "DEST", "METHOD", "PATH", "STATUS", "LATENCY", "DECISION", "RULE")
	}
	n := 0
	for e := range events {
		if o.output != formatText {
			if err := writeRecord(stdout, o.output, newTapView(e)); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(stdout, "%-12s %-8s %-42s %-10s %-7s %-28s %-6s %-9s %-11s %s\n", e.Time.Format("15:04:05.000"), e.Direction, e.Source, e.Destination,
				orDash(e.Method), orDash(e.Path), tapStatus(e), e.Duration.Round(10*time.Microsecond), orDash(e.Decision), e.Rule)
		}
		n++
		if o.max > 0 && n >= o.max {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return <-errs
}

func streamTap(ctx context.Context, u string, out chan<- *proxy.Event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("tap %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tap %s: %s", u, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e proxy.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("tap %s: %w", u, err)
		}
		select {
		case out <- &e:
		case <-ctx.Done():
			return nil
		}
	}
	return sc.Err()
}

// tapStatus is the STATUS column: the HTTP status, and for gRPC the
// grpc-status after a slash (200/5).
func tapStatus(e *proxy.Event) string {
	s := strconv.Itoa(e.Status)
	if e.GRPCStatus != "" {
		s += "/" + e.GRPCStatus
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

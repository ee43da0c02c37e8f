package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
)

type tokenCreateOptions struct {
	admin     adminOptions
	service   string
	namespace string
	ttl       time.Duration
	output    string
}

func (o *tokenCreateOptions) validate() error {
	if o.service == "" {
		return usageErrf("--service is required")
	}
	if o.ttl <= 0 {
		return usageErrf("--ttl must be positive")
	}
	return checkOutput(o.output)
}

func newTokenCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Mint single-use join tokens for workloads",
		Example: `  MESHWARD_TOKEN=$(meshward token create --service catalog) meshward proxy --service catalog ...`}
	o := &tokenCreateOptions{}
	create := &cobra.Command{
		Use:   "create --service NAME",
		Short: "Mint a single-use, expiring join token for a service (admin)",
		Long: `Mint a join token. A workload trades it once for its X.509-SVID
(spiffe://<trust-domain>/ns/<namespace>/sa/<service>). The token is single use,
expires, is stored only as a hash, and carries the pin of the CA root so the
workload can authenticate the control plane before it has a trust bundle.`,
		Example: `  meshward token create --service payments
  meshward token create --service payments --namespace shop --ttl 5m -o json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runTokenCreate(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(create)
	create.Flags().StringVar(&o.service, "service", "", "service the token is for (required)")
	create.Flags().StringVar(&o.namespace, "namespace", "default", "namespace of the service")
	create.Flags().DurationVar(&o.ttl, "ttl", 15*time.Minute, "how long the token may be used (max 24h)")
	addOutputFlag(create, &o.output)
	_ = create.RegisterFlagCompletionFunc("service", completeServices(&o.admin))
	_ = create.RegisterFlagCompletionFunc("namespace", completeNamespaces(&o.admin))
	create.ValidArgsFunction = cobra.NoFileCompletions
	cmd.AddCommand(create)
	return cmd
}

func runTokenCreate(ctx context.Context, o *tokenCreateOptions, stdout io.Writer) error {
	resp, err := adminCall(ctx, &o.admin, func(ctx context.Context, c *control.AdminClient) (*apiv1.CreateTokenResponse, error) {
		return c.CreateToken(ctx, &apiv1.CreateTokenRequest{Service: o.service, Namespace: o.namespace, TtlSeconds: int64(o.ttl / time.Second)})
	})
	if err != nil {
		return err
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, tokenView{Token: resp.Token, SpiffeID: resp.SpiffeId, ExpiresAt: unixTime(resp.ExpiresAt)})
	}
	_, err = fmt.Fprintln(stdout, resp.Token)
	return err
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/session"
)

func newIdentityCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Short: "Fetch an SVID with a join token; ban and unban identities",
		Example: `  meshward identity fetch --token "$(meshward token create --service web)" --out ./web-id
  meshward identity ban spiffe://shop.local/ns/default/sa/orders --reason "key leaked"`}
	cmd.AddCommand(newIdentityFetchCmd(), newBanCmd(true), newBanCmd(false))
	return cmd
}

type identityFetchOptions struct {
	token       string
	control     string
	trustDomain string
	out         string
	output      string
}

func (o *identityFetchOptions) validate() error {
	if o.token == "" {
		return usageErrf("--token is required (mint one with: meshward token create --service NAME)")
	}
	if o.control == "" {
		return usageErrf("--control HOST:PORT is required")
	}
	if o.trustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
			return usageErrf("--trust-domain: %v", err)
		}
	}
	return checkOutput(o.output)
}

func newIdentityFetchCmd() *cobra.Command {
	o := &identityFetchOptions{}
	c := &cobra.Command{
		Use:   "fetch --token TOKEN --control HOST:PORT",
		Short: "Trade a join token for an X.509-SVID and write it as PEM files",
		Long: `Trade a single-use join token for an X.509-SVID. The private key is made here
and never leaves this machine: only a CSR is sent. Writes svid.pem (leaf first,
then the intermediate), key.pem (0600) and bundle.pem (trust bundle roots) into
--out. The control plane is authenticated by the CA pin inside the token.`,
		Example: `  T=$(meshward token create --service web)
  meshward identity fetch --token "$T" --control 127.0.0.1:7443 --out ./web-id
  openssl verify -CAfile web-id/bundle.pem -untrusted web-id/svid.pem web-id/svid.pem`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.token == "" {
				o.token = os.Getenv("MESHWARD_TOKEN")
			}
			if err := o.validate(); err != nil {
				return err
			}
			return runIdentityFetch(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&o.token, "token", "", "join token (or env MESHWARD_TOKEN)")
	c.Flags().StringVar(&o.control, "control", "127.0.0.1:7443", "control plane address")
	c.Flags().StringVar(&o.trustDomain, "trust-domain", "", "require the control plane to be in this trust domain")
	c.Flags().StringVar(&o.out, "out", ".", "directory to write svid.pem, key.pem and bundle.pem into")
	addOutputFlag(c, &o.output)
	return c
}

func runIdentityFetch(ctx context.Context, o *identityFetchOptions, stdout io.Writer) error {
	var td spiffeid.TrustDomain
	if o.trustDomain != "" {
		td = spiffeid.RequireTrustDomainFromString(o.trustDomain)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sess, err := session.New(ctx, session.Config{ControlAddr: o.control, Token: o.token, TrustDomain: td})
	if err != nil {
		return err
	}
	defer sess.Close()
	ids := sess.Holder()
	svid, err := ids.GetX509SVID()
	if err != nil {
		return err
	}
	bundle, err := ids.GetX509BundleForTrustDomain(ids.TrustDomain())
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		return err
	}
	bundlePEM, err := bundle.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"svid.pem": certPEM, "key.pem": keyPEM, "bundle.pem": bundlePEM} {
		if err := os.WriteFile(filepath.Join(o.out, name), data, 0o600); err != nil {
			return err
		}
	}
	leaf := svid.Certificates[0]
	if o.output != formatText {
		return writeOutput(stdout, o.output, identityFetchView{
			SpiffeID: svid.ID.String(), Serial: identity.SerialHex(leaf), NotAfter: utcTime(leaf.NotAfter),
			Files: identityFilesView{SVID: filepath.Join(o.out, "svid.pem"), Key: filepath.Join(o.out, "key.pem"), Bundle: filepath.Join(o.out, "bundle.pem")},
		})
	}
	fmt.Fprintf(stdout, "%s\nserial %s, valid until %s\nwrote %s, %s, %s\n", svid.ID, identity.SerialHex(leaf), leaf.NotAfter.UTC().Format(time.RFC3339),
		filepath.Join(o.out, "svid.pem"), filepath.Join(o.out, "key.pem"), filepath.Join(o.out, "bundle.pem"))
	return nil
}

type banOptions struct {
	admin  adminOptions
	reason string
	output string
}

func newBanCmd(ban bool) *cobra.Command {
	o := &banOptions{}
	use, short, example := "ban SPIFFE-ID", "Deny an identity mesh-wide now, before any policy, and stop issuing to it (admin)",
		`  meshward identity ban spiffe://shop.local/ns/default/sa/catalog --reason "key leaked"`
	if !ban {
		use, short, example = "unban SPIFFE-ID", "Lift a ban (admin)", `  meshward identity unban spiffe://shop.local/ns/default/sa/catalog`
	}
	c := &cobra.Command{
		Use: use, Short: short, Example: example, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			if _, err := spiffeid.FromString(args[0]); err != nil {
				if config.ValidName(args[0]) == nil {
					return usageErrf("%q is a name, not a SPIFFE ID: a service's identity is spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/%s (meshward status lists them)", args[0], args[0])
				}
				return usageErrf("%q is not a SPIFFE ID: %v", args[0], err)
			}
			return runBan(cmd.Context(), o, ban, args[0], cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(c)
	c.ValidArgsFunction = firstArg(completeIdentities(&o.admin, ban))
	c.Flags().StringVar(&o.reason, "reason", "", "why (recorded in the audit trail)")
	addOutputFlag(c, &o.output)
	return c
}

func runBan(ctx context.Context, o *banOptions, ban bool, id string, stdout io.Writer) error {
	c, err := o.admin.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	req := &apiv1.BanRequest{SpiffeId: id, Reason: o.reason}
	var resp *apiv1.BanResponse
	if ban {
		resp, err = c.Ban(ctx, req)
	} else {
		resp, err = c.Unban(ctx, req)
	}
	if err != nil {
		return o.admin.rpcErr(err)
	}
	if o.output != formatText {
		return writeOutput(stdout, o.output, banView{Banned: orEmpty(resp.Banned)})
	}
	verb := "banned"
	if !ban {
		verb = "unbanned"
	}
	fmt.Fprintf(stdout, "%s %s; banned now: %d identities\n", verb, id, len(resp.Banned))
	for _, b := range resp.Banned {
		fmt.Fprintf(stdout, "  %s\n", b)
	}
	return nil
}

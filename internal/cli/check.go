package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/control"
	"meshward.dev/meshward/internal/identity"
)

// Thresholds of `meshward check` (also in its --help).
const (
	// expiryWarnFraction: a certificate warns when less than this part of
	// its lifetime remains. One fraction fits every lifetime: a fixed
	// "7 days" would always warn for the 7-day intermediate, which rotates
	// at half-life; below a fifth, its rotation is overdue.
	expiryWarnFraction = 0.2
	// clockWarnSkew and clockFailSkew bound the difference between this
	// machine's clock and the control plane's.
	clockWarnSkew = time.Second
	clockFailSkew = 30 * time.Second
)

// Check statuses.
const (
	checkPass = "pass"
	checkWarn = "warn"
	checkFail = "fail"
)

type checkOptions struct {
	admin   adminOptions
	output  string
	timeout time.Duration
	color   bool
	now     func() time.Time
}

func (o *checkOptions) validate() error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if o.timeout <= 0 {
		return usageErrf("--timeout must be positive, got %s", o.timeout)
	}
	return nil
}

func newCheckCmd(_ *globalOptions) *cobra.Command {
	o := &checkOptions{now: time.Now}
	c := &cobra.Command{
		Use:   "check",
		Short: "Preflight: control plane, CA expiry, every sidecar on the current root and policy, clocks",
		Long: `Check runs a preflight of the mesh and prints one line per check, marked
✔ (passed), ‼ (warning) or ✖ (failed); a failed check says what to do next.

  control plane   reachable with the admin credential in --data-dir
  clock           this machine's clock against the control plane's: warns
                  above 1s of skew, fails above 30s
  CA              each root and the intermediate: warns when less than 20%
                  of its lifetime remains, fails when expired or not yet valid
  sidecars        the certificate each connected sidecar reports is verified
                  (signatures, chain to the current trust bundle, identity,
                  expiry); warns when less than 20% of its lifetime remains
  policy          every sidecar enforces the latest applied policy revision
  kubernetes      cluster checks arrive with Kubernetes mode

Certificates are judged by the control plane's clock. Exit code 0 when
everything passed (warnings allowed), 1 when a check failed, 2 on a usage
error.`,
		Example: `  # check the local mesh started by meshward up
  meshward check

  # a control plane elsewhere; list what did not pass (exit 1 on a failure, for CI)
  meshward check --data-dir /var/lib/meshward --control 10.0.0.5:7443 -o json | jq '.groups[].checks[] | select(.status != "pass")'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			o.color = isTerminal(cmd.OutOrStdout())
			return runCheck(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.admin.addFlags(c)
	addOutputFlag(c, &o.output)
	c.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the control plane")
	return c
}

// checkResult is one line of `meshward check`.
type checkResult struct {
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	Message   string     `json:"message"`
	Hint      string     `json:"hint,omitempty"`
	Subject   string     `json:"subject,omitempty"` // SPIFFE ID or certificate serial
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revision  int64      `json:"revision,omitempty"`
	Skew      string     `json:"skew,omitempty"` // duration: control plane minus this machine
}

type checkGroup struct {
	Name   string        `json:"name"`
	Checks []checkResult `json:"checks"`
	Note   string        `json:"note,omitempty"`
}

type checkSummary struct {
	Passed   int `json:"passed"`
	Warnings int `json:"warnings"`
	Failed   int `json:"failed"`
}

type checkReport struct {
	OK        bool         `json:"ok"`
	CheckedAt time.Time    `json:"checked_at"`
	Groups    []checkGroup `json:"groups"`
	Summary   checkSummary `json:"summary"`
}

func runCheck(ctx context.Context, o *checkOptions, stdout io.Writer) error {
	rep := collectChecks(ctx, o)
	if o.output == formatText {
		writeCheckText(stdout, rep, o.color)
	} else if err := writeOutput(stdout, o.output, rep); err != nil {
		return err
	}
	if !rep.OK {
		return errFailed
	}
	return nil
}

// collectChecks calls the control plane once and judges what it says.
func collectChecks(ctx context.Context, o *checkOptions) *checkReport {
	rep := &checkReport{CheckedAt: o.now().UTC().Truncate(time.Second)}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var resp *apiv1.MeshCheckResponse
	sent := o.now()
	c, err := o.admin.dial()
	if err == nil {
		resp, err = c.MeshCheck(ctx, &apiv1.MeshCheckRequest{})
		c.Close()
	}
	received := o.now()
	cp := checkGroup{Name: "control plane"}
	if err != nil {
		cp.Checks = append(cp.Checks, unreachable(o, err))
		rep.Groups = append(rep.Groups, cp)
		rep.Groups = append(rep.Groups, checkGroup{Name: "other checks", Note: "skipped: they need the control plane"})
		return rep.finish()
	}
	st := resp.GetStatus()
	serverNow := time.Unix(0, resp.GetServerTime())
	cp.Checks = append(cp.Checks,
		checkResult{Name: "control-plane-reachable", Status: checkPass, Message: fmt.Sprintf("control plane reachable at %s, trust domain %s", o.admin.address(), st.GetTrustDomain())},
		clockCheck(serverNow, sent, received))
	rep.Groups = append(rep.Groups,
		cp,
		checkGroup{Name: "certificate authority", Checks: caChecks(st.GetCa(), serverNow)},
		checkGroup{Name: "sidecar certificates", Checks: sidecarCertChecks(resp, serverNow)},
		checkGroup{Name: "policy", Checks: policyChecks(resp)},
		checkGroup{Name: "kubernetes", Note: "cluster checks arrive with Kubernetes mode; nothing to check in local and VM mode"},
	)
	return rep.finish()
}

func (r *checkReport) finish() *checkReport {
	for i := range r.Groups {
		r.Groups[i].Checks = orEmpty(r.Groups[i].Checks)
		for _, c := range r.Groups[i].Checks {
			switch c.Status {
			case checkPass:
				r.Summary.Passed++
			case checkWarn:
				r.Summary.Warnings++
			default:
				r.Summary.Failed++
			}
		}
	}
	r.OK = r.Summary.Failed == 0
	return r
}

// address is where the admin client dials: --control, else the address
// the control plane recorded in the data dir.
func (o *adminOptions) address() string {
	if o.control != "" {
		return o.control
	}
	b, err := os.ReadFile(filepath.Join(o.dataDir, control.AddrFile))
	if err != nil {
		return "(unknown address)"
	}
	return strings.TrimSpace(string(b))
}

// unreachable is the first check's failure: no credential, no answer, or
// a control plane too old for MeshCheck.
func unreachable(o *checkOptions, err error) checkResult {
	res := checkResult{Name: "control-plane-reachable", Status: checkFail}
	st, isRPC := status.FromError(err)
	switch {
	case !isRPC:
		res.Message = "cannot call the control plane: " + err.Error()
		res.Hint = "start it with `meshward control` or `meshward up`, or point --data-dir at its data dir"
	case st.Code() == codes.Unimplemented:
		res.Message = "the control plane does not serve MeshCheck: it is older than this CLI"
		res.Hint = "upgrade the control plane to this version of meshward"
	case st.Code() == codes.PermissionDenied || st.Code() == codes.Unauthenticated:
		res.Message = "refused by the control plane: " + st.Message()
		res.Hint = fmt.Sprintf("use the admin credential of this control plane (in %s/admin); it renews while the control plane runs", o.admin.dataDir)
	default:
		res.Message = fmt.Sprintf("control plane unreachable: %s", st.Message())
		res.Hint = fmt.Sprintf("is `meshward control` or `meshward up` running with --data-dir %s? Start it, or pass --control HOST:PORT", o.admin.dataDir)
	}
	return res
}

// clockCheck compares the control plane's clock with the midpoint of the
// call, so the round trip counts for at most half of it.
func clockCheck(server, sent, received time.Time) checkResult {
	local := sent.Add(received.Sub(sent) / 2)
	skew := server.Sub(local)
	abs := skew.Abs()
	res := checkResult{Name: "clock-skew", Status: checkPass, Skew: skew.Round(time.Millisecond).String()}
	how := "ahead of"
	if skew < 0 {
		how = "behind"
	}
	res.Message = fmt.Sprintf("clock in sync with the control plane (skew %s)", abs.Round(time.Millisecond))
	hint := "sync both clocks with NTP (e.g. `timedatectl set-ntp true` or chrony): certificates are checked against the clock"
	switch {
	case abs > clockFailSkew:
		res.Status, res.Hint = checkFail, hint
		res.Message = fmt.Sprintf("the control plane's clock is %s %s this machine's (over %s)", abs.Round(time.Second), how, clockFailSkew)
	case abs > clockWarnSkew:
		res.Status, res.Hint = checkWarn, hint
		res.Message = fmt.Sprintf("the control plane's clock is %s %s this machine's (over %s)", abs.Round(time.Millisecond), how, clockWarnSkew)
	}
	return res
}

// caChecks judges every root in the bundle and the signing intermediate.
func caChecks(ca *apiv1.CAStatusResponse, now time.Time) []checkResult {
	var out []checkResult
	for _, c := range ca.GetCertificates() {
		out = append(out, caCheck(c, now))
	}
	if len(out) == 0 {
		out = append(out, checkResult{Name: "ca", Status: checkFail, Message: "the control plane reported no CA certificates", Hint: "see the control plane's log"})
	}
	return out
}

func caCheck(c *apiv1.Certificate, now time.Time) checkResult {
	notBefore, notAfter := time.Unix(c.GetNotBefore(), 0), time.Unix(c.GetNotAfter(), 0)
	what := c.GetRole()
	if c.GetState() != "active" {
		what += " (" + c.GetState() + ")"
	}
	rotate := "rotate with `meshward ca rotate`"
	if c.GetRole() == "root" {
		rotate = "rotate with `meshward ca rotate --root` and follow it with `meshward ca status`"
	}
	res := checkResult{Name: "ca-" + c.GetRole(), Status: checkPass, Subject: c.GetFingerprint(), ExpiresAt: utcTime(notAfter)}
	left := notAfter.Sub(now)
	switch {
	case !now.Before(notAfter):
		res.Status, res.Hint = checkFail, rotate
		res.Message = fmt.Sprintf("%s %s expired at %s", what, short(c.GetFingerprint(), 12), notAfter.UTC().Format(time.RFC3339))
	case now.Before(notBefore):
		res.Status = checkFail
		res.Message = fmt.Sprintf("%s %s is not valid until %s", what, short(c.GetFingerprint(), 12), notBefore.UTC().Format(time.RFC3339))
		res.Hint = "check the control plane's clock (it issued a certificate from its future)"
	case c.GetState() != "retiring" && left < time.Duration(float64(notAfter.Sub(notBefore))*expiryWarnFraction):
		res.Status, res.Hint = checkWarn, rotate
		if c.GetRole() == "intermediate" {
			res.Hint = "it should have rotated at half-life: " + rotate + " and see the control plane's log"
		}
		res.Message = fmt.Sprintf("%s %s expires in %s (under 20%% of its %s lifetime left)", what, short(c.GetFingerprint(), 12), humanDuration(left), humanDuration(notAfter.Sub(notBefore)))
	default:
		res.Message = fmt.Sprintf("%s %s valid, expires in %s", what, short(c.GetFingerprint(), 12), humanDuration(left))
	}
	return res
}

// sidecarCertChecks verifies, for each connected sidecar, the chain the
// control plane knows under the serial the sidecar reports: signatures up
// to a root of the current bundle, validity at now, and that it names the
// sidecar's identity. Nothing is taken from strings the sidecar sent.
func sidecarCertChecks(resp *apiv1.MeshCheckResponse, now time.Time) []checkResult {
	ws := resp.GetStatus().GetWorkloads()
	if len(ws) == 0 {
		return []checkResult{{Name: "sidecar-certificate", Status: checkWarn, Message: "no sidecar connected: nothing to check", Hint: "start sidecars with `meshward up` or `meshward proxy`"}}
	}
	roots, err := parseDERs(resp.GetBundle())
	td, tdErr := spiffeid.TrustDomainFromString(resp.GetStatus().GetTrustDomain())
	var out []checkResult
	for _, w := range ws {
		res := checkResult{Name: "sidecar-certificate", Subject: w.GetSpiffeId(), Status: checkFail}
		name := sidecarName(w)
		restart := "restart the sidecar: it bootstraps or renews on start"
		chain := resp.GetChains()[w.GetSvidSerial()]
		switch {
		case err != nil || tdErr != nil || len(roots) == 0:
			res.Message, res.Hint = name+": the trust bundle from the control plane is unusable", "see the control plane's log"
		case w.GetSvidSerial() == "":
			res.Status = checkWarn
			res.Message, res.Hint = name+" has not reported its certificate yet", "run the check again in a few seconds"
		case chain == nil:
			res.Message = fmt.Sprintf("%s reports certificate %s, which the control plane never issued or saw", name, short(w.GetSvidSerial(), 12))
			res.Hint = restart
		default:
			res = verifySidecarChain(res, name, chain.GetCerts(), roots, td, w.GetSpiffeId(), now)
			if res.Status == checkFail {
				res.Hint = restart + "; if it cannot renew, look for refusals in `meshward audit`"
			}
		}
		out = append(out, res)
	}
	return out
}

func verifySidecarChain(res checkResult, name string, ders [][]byte, roots []*x509.Certificate, td spiffeid.TrustDomain, wantID string, now time.Time) checkResult {
	chain, err := parseDERs(ders)
	if err != nil || len(chain) == 0 {
		res.Message = name + ": its certificate chain does not parse"
		return res
	}
	leaf := chain[0]
	res.ExpiresAt = utcTime(leaf.NotAfter)
	serial := short(identity.SerialHex(leaf), 12)
	if !now.Before(leaf.NotAfter) {
		res.Message = fmt.Sprintf("%s: certificate %s expired at %s", name, serial, leaf.NotAfter.UTC().Format(time.RFC3339))
		return res
	}
	id, verified, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, roots), x509svid.WithTime(now))
	if err != nil {
		res.Message = fmt.Sprintf("%s: certificate %s does not chain to the current trust bundle: %v", name, serial, err)
		return res
	}
	if id.String() != wantID {
		res.Message = fmt.Sprintf("%s: certificate %s names %s, not the sidecar's identity", name, serial, id)
		return res
	}
	root := verified[0][len(verified[0])-1]
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	left := leaf.NotAfter.Sub(now)
	if left < time.Duration(float64(lifetime)*expiryWarnFraction) {
		res.Status = checkWarn
		res.Message = fmt.Sprintf("%s: certificate %s chains to root %s but expires in %s (renewal is overdue)", name, serial, short(identity.Fingerprint(root), 12), humanDuration(left))
		res.Hint = "restart the sidecar if it does not renew; look for refusals in `meshward audit`"
		return res
	}
	res.Status = checkPass
	res.Message = fmt.Sprintf("%s: certificate %s chains to root %s, expires in %s", name, serial, short(identity.Fingerprint(root), 12), humanDuration(left))
	return res
}

// policyChecks: every sidecar enforces the latest applied revision.
func policyChecks(resp *apiv1.MeshCheckResponse) []checkResult {
	latest := resp.GetLatestPolicy()
	if latest == nil {
		return []checkResult{{Name: "policy-applied", Status: checkWarn, Message: "no policy applied: every call between services is denied",
			Hint: "apply policies with `meshward policy apply DIR`"}}
	}
	out := []checkResult{{Name: "policy-applied", Status: checkPass, Revision: latest.GetRevision(),
		Message: fmt.Sprintf("latest applied policy: revision %d, version %s", latest.GetRevision(), short(latest.GetVersion(), 12))}}
	for _, w := range resp.GetStatus().GetWorkloads() {
		name := sidecarName(w)
		res := checkResult{Name: "sidecar-policy", Subject: w.GetSpiffeId(), Status: checkPass, Revision: latest.GetRevision()}
		switch {
		case w.GetPolicyError() != "":
			res.Status = checkFail
			res.Message = fmt.Sprintf("%s rejected the pushed policy: %s", name, firstLine(w.GetPolicyError()))
			res.Hint = "fix the policy and re-apply with `meshward policy apply DIR`; the sidecar keeps its last good one"
		case w.GetPolicyVersion() != latest.GetVersion():
			res.Status, res.Revision = checkFail, 0
			have := "no policy"
			if v := w.GetPolicyVersion(); v != "" {
				have = "policy version " + short(v, 12)
			}
			res.Message = fmt.Sprintf("%s enforces %s, not revision %d (version %s)", name, have, latest.GetRevision(), short(latest.GetVersion(), 12))
			res.Hint = "re-apply with `meshward policy apply DIR`, or restart the sidecar so it takes the current policy"
		default:
			res.Message = fmt.Sprintf("%s enforces revision %d", name, latest.GetRevision())
		}
		out = append(out, res)
	}
	return out
}

// sidecarName is "service (namespace, inbound address)" for a line.
func sidecarName(w *apiv1.WorkloadStatus) string {
	name := w.GetService()
	if name == "" {
		name = w.GetSpiffeId()
	}
	if ns := w.GetNamespace(); ns != "" && ns != "default" {
		name = ns + "/" + name
	}
	if a := w.GetInboundAddr(); a != "" {
		name += " at " + a
	}
	return "sidecar " + name
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func parseDERs(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificates")
	}
	return out, nil
}

// humanDuration is a duration at the precision a person reads an expiry
// in: days above two days, hours above two hours, else minutes (seconds
// under a minute).
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

const (
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiReset  = "\x1b[0m"
)

func writeCheckText(w io.Writer, rep *checkReport, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	for i, g := range rep.Groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, g.Name)
		fmt.Fprintln(w, strings.Repeat("-", len(g.Name)))
		for _, c := range g.Checks {
			mark := paint(ansiGreen, "✔")
			switch c.Status {
			case checkWarn:
				mark = paint(ansiYellow, "‼")
			case checkFail:
				mark = paint(ansiRed, "✖")
			}
			fmt.Fprintf(w, "%s %s\n", mark, c.Message)
			if c.Hint != "" {
				fmt.Fprintf(w, "    %s\n", c.Hint)
			}
		}
		if g.Note != "" {
			fmt.Fprintf(w, "  %s\n", g.Note)
		}
	}
	fmt.Fprintln(w)
	s := rep.Summary
	switch {
	case s.Failed > 0:
		fmt.Fprintln(w, paint(ansiRed, fmt.Sprintf("%s: %d failed, %d warnings, %d passed", "check failed", s.Failed, s.Warnings, s.Passed)))
	case s.Warnings > 0:
		fmt.Fprintln(w, paint(ansiYellow, fmt.Sprintf("checks passed with %d warnings (%d passed)", s.Warnings, s.Passed)))
	default:
		fmt.Fprintln(w, paint(ansiGreen, fmt.Sprintf("all %d checks passed", s.Passed)))
	}
}

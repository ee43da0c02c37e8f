package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"meshward.dev/meshward/internal/scan"
)

// Report is the JSON document `meshward probe -o json` prints: the scan
// report (findings and summary, as `meshward scan -o json`) plus what the
// probe saw, under "endpoint".
type Report struct {
	Findings []scan.Finding `json:"findings"`
	Summary  scan.Summary   `json:"summary"`
	Endpoint *Result        `json:"endpoint"`
}

// NewReport pairs a result with its findings.
func NewReport(res *Result, findings []scan.Finding) Report {
	r := scan.NewReport(findings)
	return Report{Findings: r.Findings, Summary: r.Summary, Endpoint: res}
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people: what the endpoint did, its chain,
// then the findings worst first and a summary line.
func WriteText(w io.Writer, r Report) error {
	tw := &errWriter{w: w}
	res := r.Endpoint
	tw.printf("Endpoint %s (probed %s)\n\n", res.Target, res.ProbedAt.Format(time.RFC3339))

	t := tabwriter.NewWriter(tw, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(t, "  %s\t%s\n", k, v) }
	row("plaintext HTTP", verdict(res.PlaintextHTTP))
	row("plaintext bytes", verdict(res.PlaintextRaw))
	if res.SpeaksTLS {
		row("TLS without client cert", verdict(res.NoClientCert))
		if res.WithClientCert != nil {
			row("TLS with client cert", verdict(*res.WithClientCert))
		}
	} else {
		row("TLS", "not spoken: no version was accepted")
	}
	for _, v := range res.Versions {
		state := "refused"
		if v.Accepted {
			state = "ACCEPTED"
		}
		row(v.Name, state+" - "+v.Detail)
	}
	for _, n := range res.Notes {
		row("note", n)
	}
	_ = t.Flush()

	if suites := suiteLines(res); len(suites) > 0 {
		tw.printf("\nCipher suites accepted\n")
		for _, s := range suites {
			tw.printf("  %s\n", s)
		}
	}
	if len(res.Chain) > 0 {
		tw.printf("\nCertificate chain (as presented)\n")
		for i, c := range res.Chain {
			writeCert(tw, i, c)
		}
	}
	if res.Bundle != nil {
		state := "verifies"
		if !res.Bundle.Verified {
			state = "DOES NOT VERIFY"
		}
		tw.printf("\nTrust bundle %s: %s (%s)\n", res.Bundle.File, state, res.Bundle.Detail)
	}

	tw.printf("\nFindings\n")
	if len(r.Findings) == 0 {
		tw.printf("  none\n")
	}
	for _, f := range r.Findings {
		tw.printf("  %-8s %s  %s  %s %s\n", strings.ToUpper(f.Severity.String()), f.Rule, f.Category, f.Kind, f.Name)
		tw.printf("           %s\n", f.Message)
		tw.printf("           fix: %s\n", f.Remediation)
	}
	s := r.Summary
	tw.printf("\n%d critical, %d high, %d medium, %d low, %d info\n", s.Critical, s.High, s.Medium, s.Low, s.Info)
	return tw.err
}

func verdict(c Check) string {
	if c.Accepted {
		return "ACCEPTED - " + c.Detail
	}
	return "refused - " + c.Detail
}

func suiteLines(res *Result) []string {
	var out []string
	for _, v := range res.Versions {
		for _, s := range v.Suites {
			line := v.Name + "  " + s.Name
			if v.Name == "TLS 1.3" {
				line += "  (negotiated; TLS 1.3 suites cannot be offered one at a time)"
			}
			if s.Weak != "" {
				line += "  WEAK: " + s.Weak
			}
			out = append(out, line)
		}
	}
	return out
}

func writeCert(w *errWriter, i int, c Cert) {
	if c.ParseError != "" {
		w.printf("  [%d] unparsable certificate sha256 %s: %s\n", i, c.SHA256, c.ParseError)
		return
	}
	role := ""
	switch {
	case c.SelfSigned && c.IsCA:
		role = " (self-signed CA)"
	case c.SelfSigned:
		role = " (self-signed)"
	case c.IsCA:
		role = " (CA)"
	}
	w.printf("  [%d] subject %s%s\n", i, orDash(c.Subject), role)
	w.printf("      issuer     %s\n", orDash(c.Issuer))
	w.printf("      valid      %s to %s (lifetime %s, remaining %s)\n",
		c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.Lifetime, c.Remaining)
	key := fmt.Sprintf("%s %d-bit", c.KeyType, c.KeyBits)
	if c.KeyCurve != "" {
		key += " (" + c.KeyCurve + ")"
	}
	w.printf("      key        %s\n", key)
	w.printf("      signature  %s\n", c.Signature)
	switch {
	case c.SPIFFEID != "":
		w.printf("      spiffe id  %s (trust domain %s)\n", c.SPIFFEID, c.TrustDomain)
	case c.IDProblem != "":
		w.printf("      spiffe id  invalid: %s\n", c.IDProblem)
	}
	if len(c.DNSNames)+len(c.IPs) > 0 {
		w.printf("      names      %s\n", strings.Join(append(append([]string{}, c.DNSNames...), c.IPs...), ", "))
	}
	w.printf("      serial     %s\n", c.Serial)
	w.printf("      sha256     %s\n", c.SHA256)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so formatting code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(e, format, args...)
}

package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"meshward.dev/meshward/internal/scan"
)

// JSON writes the DESIGN.md document: findings and a per-severity summary,
// plus the suppressed findings, so none is silently lost.
func JSON(w io.Writer, res scan.Result) error {
	r := scan.NewReport(res.Findings)
	doc := struct {
		Findings   []scan.Finding `json:"findings"`
		Summary    scan.Summary   `json:"summary"`
		Suppressed []scan.Finding `json:"suppressed"`
		Input      scan.Input     `json:"input"`
	}{r.Findings, r.Summary, res.Suppressed, res.Input}
	if doc.Suppressed == nil {
		doc.Suppressed = []scan.Finding{}
	}
	if doc.Input.Skipped == nil {
		doc.Input.Skipped = []scan.SkippedFile{}
	}
	if doc.Input.Problems == nil {
		doc.Input.Problems = []scan.InputProblem{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// TextOptions controls the human report.
type TextOptions struct {
	Color bool
	// Verbose lists the skipped files, not only their count.
	Verbose bool
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
)

var sevColor = map[scan.Severity]string{
	scan.SeverityCritical: "\x1b[1;35m",
	scan.SeverityHigh:     "\x1b[1;31m",
	scan.SeverityMedium:   "\x1b[1;33m",
	scan.SeverityLow:      "\x1b[1;36m",
	scan.SeverityInfo:     "\x1b[1;37m",
}

// Text writes findings grouped by severity, then by object, each with its
// message and remediation, and a summary line.
func Text(w io.Writer, res scan.Result, opts TextOptions) error {
	paint := func(code, s string) string {
		if !opts.Color {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	var sev scan.Severity = -1
	var obj string
	for _, f := range res.Findings {
		if f.Severity != sev {
			sev = f.Severity
			obj = ""
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(paint(sevColor[sev], strings.ToUpper(sev.String())) + "\n")
		}
		ref := scan.Ref{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}.String()
		if ref != obj {
			obj = ref
			loc := ""
			if f.File != "" {
				loc = "  " + paint(ansiDim, position(f))
			}
			fmt.Fprintf(&b, "  %s%s\n", paint(ansiBold, ref), loc)
		}
		fmt.Fprintf(&b, "    %s [%s] %s\n", f.Rule, f.Category, f.Message)
		b.WriteString(indent(f.Remediation, "      fix: ", "           "))
	}
	if len(res.Suppressed) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(paint(ansiDim, "SUPPRESSED") + "\n")
		for _, f := range res.Suppressed {
			fmt.Fprintf(&b, "  %s %s %s\n", f.Rule, scan.Ref{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}, paint(ansiDim, "("+f.Category+")"))
		}
	}
	if len(res.Input.Problems) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(paint(sevColor[scan.SeverityHigh], "NOT READ") + " (malformed documents of kinds the scanner reads; fix them and scan again)\n")
		for _, p := range res.Input.Problems {
			b.WriteString("  " + p.String() + "\n")
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	if n := len(res.Input.Skipped); n > 0 {
		reasons := map[string]int{}
		var order []string
		for _, sk := range res.Input.Skipped {
			if reasons[sk.Reason] == 0 {
				order = append(order, sk.Reason)
			}
			reasons[sk.Reason]++
		}
		for _, r := range order {
			fmt.Fprintf(&b, "skipped %d %s: %s\n", reasons[r], plural(reasons[r], "file"), r)
		}
		if opts.Verbose {
			for _, sk := range res.Input.Skipped {
				b.WriteString(paint(ansiDim, "  "+sk.File) + "\n")
			}
		} else {
			b.WriteString(paint(ansiDim, "  (-v lists them)") + "\n")
		}
	}
	if res.Input.Files > 0 && res.Input.Objects == 0 && len(res.Input.Problems) == 0 {
		fmt.Fprintf(&b, "nothing recognized: none of the %d %s holds Kubernetes, Istio, Linkerd, Consul or meshward config the scanner reads\n",
			res.Input.Files, plural(res.Input.Files, "file"))
	}
	b.WriteString(SummaryLine(res) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// SummaryLine is "N findings (a critical, b high, ...), M suppressed".
func SummaryLine(res scan.Result) string {
	r := scan.NewReport(res.Findings)
	s := r.Summary
	objs := map[string]bool{}
	for _, f := range res.Findings {
		objs[f.Kind+"/"+f.Namespace+"/"+f.Name] = true
	}
	line := fmt.Sprintf("%d %s on %d %s: %d critical, %d high, %d medium, %d low, %d info",
		len(res.Findings), plural(len(res.Findings), "finding"), len(objs), plural(len(objs), "object"),
		s.Critical, s.High, s.Medium, s.Low, s.Info)
	if len(res.Suppressed) > 0 {
		line += fmt.Sprintf("; %d suppressed", len(res.Suppressed))
	}
	return line
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func position(f scan.Finding) string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

func indent(text, first, rest string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if i == 0 {
			b.WriteString(first + l + "\n")
		} else {
			b.WriteString(rest + l + "\n")
		}
	}
	return b.String()
}

// Fingerprint identifies a finding across runs by (category, kind,
// namespace, name), the identity CI tools compare.
func Fingerprint(f scan.Finding) string {
	h := sha256.Sum256([]byte(f.Category + "\x00" + f.Kind + "\x00" + f.Namespace + "\x00" + f.Name))
	return hex.EncodeToString(h[:16])
}

func uri(file string) string {
	if file == "" || file == "-" {
		return ""
	}
	return filepath.ToSlash(file)
}

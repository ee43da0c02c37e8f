package scan

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// IgnoreAnnotation on an object suppresses findings of the named rules on
// it: "MW-ISTIO-003 reason", several entries separated by newlines or ";".
const IgnoreAnnotation = "meshward.dev/ignore"

// Result is the outcome of a scan: what to report and what was suppressed,
// and, when the inputs were files, what in them was not read.
type Result struct {
	Findings   []Finding
	Suppressed []Finding
	Input      Input
}

// Input is what a scan of files read: how many files, the files that held
// nothing the scanner reads (skipped, with why), and the malformed
// documents of kinds it reads (problems: the scan went on without them).
type Input struct {
	Files   int `json:"files"`
	Objects int `json:"objects"` // read from the files

	Skipped  []SkippedFile  `json:"skipped"`
	Problems []InputProblem `json:"problems"`
}

// SkippedFile is a file the scan read nothing from.
type SkippedFile struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// InputProblem is a document the scanner should have read and could not.
type InputProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p InputProblem) String() string {
	pos := p.File
	if p.Line > 0 {
		pos = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Field != "" {
		return pos + ": " + p.Field + ": " + p.Message
	}
	return pos + ": " + p.Message
}

// Suppression silences findings of a rule (or category), optionally only
// on one object.
type Suppression struct {
	Rule   string // rule ID or category
	Ref    Ref    // zero: every object
	Reason string
}

func (s Suppression) matches(f Finding) bool {
	if s.Rule != f.Rule && s.Rule != f.Category && s.Rule != "*" {
		return false
	}
	if s.Ref == (Ref{}) {
		return true
	}
	return s.Ref == Ref{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}
}

// ParseIgnoreFile reads suppressions, one a line:
//
//	RULE-ID|category [Kind/namespace/name|Kind/name] [# reason]
//
// Blank lines and lines starting with # are skipped.
func ParseIgnoreFile(name string, r io.Reader) ([]Suppression, error) {
	var out []Suppression
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		reason := ""
		if i := strings.Index(line, "#"); i >= 0 {
			reason = strings.TrimSpace(line[i+1:])
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		s := Suppression{Rule: fields[0], Reason: reason}
		if len(fields) > 2 {
			return nil, fmt.Errorf("%s:%d: rule: want \"RULE-ID [Kind/namespace/name]\", got %q", name, n, strings.TrimSpace(line))
		}
		if len(fields) == 2 {
			parts := strings.Split(fields[1], "/")
			switch len(parts) {
			case 2:
				s.Ref = Ref{Kind: parts[0], Name: parts[1]}
			case 3:
				s.Ref = Ref{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
			default:
				return nil, fmt.Errorf("%s:%d: object: want Kind/namespace/name or Kind/name, got %q", name, n, fields[1])
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// annotationSuppressions reads the ignore annotations of every object.
func annotationSuppressions(m *Model) []Suppression {
	var out []Suppression
	for _, o := range m.Objects {
		v, ok := o.Annotations[IgnoreAnnotation]
		if !ok {
			continue
		}
		for _, entry := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ';' || r == ',' }) {
			fields := strings.Fields(entry)
			if len(fields) == 0 {
				continue
			}
			out = append(out, Suppression{Rule: fields[0], Ref: o.Ref(), Reason: strings.Join(fields[1:], " ")})
		}
	}
	return out
}

// Run applies rules to the model, keeps one finding per (category, object)
// (the most severe), moves suppressed findings aside and sorts both lists.
func Run(m *Model, rules []Rule, ignores []Suppression) Result {
	best := map[string]Finding{}
	for i := range rules {
		for _, f := range rules[i].Check(m) {
			k := f.Category + "\x00" + f.Kind + "\x00" + f.Namespace + "\x00" + f.Name
			if old, ok := best[k]; ok && (old.Severity > f.Severity || (old.Severity == f.Severity && old.Rule <= f.Rule)) {
				continue
			}
			best[k] = f
		}
	}
	sup := append(annotationSuppressions(m), ignores...)
	var res Result
	for _, f := range best {
		suppressed := false
		for _, s := range sup {
			if s.matches(f) {
				suppressed = true
				break
			}
		}
		if suppressed {
			res.Suppressed = append(res.Suppressed, f)
		} else {
			res.Findings = append(res.Findings, f)
		}
	}
	Sort(res.Findings)
	Sort(res.Suppressed)
	return res
}

// Sort orders findings deterministically: most severe first, then by
// object (namespace, kind, name), then category and rule.
func Sort(fs []Finding) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		return a.Rule < b.Rule
	})
}

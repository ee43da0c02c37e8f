package policytest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
)

// WriteText writes one line per case and the coverage. color adds ANSI
// colors (for terminals only).
func (r *Report) WriteText(w io.Writer, color bool) error {
	pass, fail, reset := "PASS", "FAIL", ""
	if color {
		pass, fail, reset = "\x1b[32mPASS", "\x1b[31mFAIL", "\x1b[0m"
	}
	for _, res := range r.Results {
		status := pass
		if !res.Pass {
			status = fail
		}
		by := res.Rule
		if res.Policy != "" {
			by = res.Policy + "/" + res.Rule
		}
		fmt.Fprintf(w, "%s%s  %s: %s  (%s by %s)", status, reset, res.Test, res.Case, res.Got, by)
		if !res.Pass {
			fmt.Fprintf(w, "  want %s  at %s:%d", res.Expect, res.File, res.Line)
		}
		if res.Message != "" {
			fmt.Fprintf(w, "  %s", res.Message)
		}
		fmt.Fprintln(w)
	}
	covered := r.Rules - len(r.Uncovered)
	pct := 100.0
	if r.Rules > 0 {
		pct = 100 * float64(covered) / float64(r.Rules)
	}
	fmt.Fprintf(w, "\n%d passed, %d failed; rule coverage %d/%d (%.0f%%)\n", r.Passed, r.Failed, covered, r.Rules, pct)
	for _, u := range r.Uncovered {
		fmt.Fprintf(w, "  not exercised: %s/%s (%s:%d)\n", u.Policy, u.Rule, u.File, u.Line)
	}
	_, err := fmt.Fprintf(w, "policy version %s\n", r.Version)
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML, one testsuite per PolicyTest.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Tests: len(r.Results), Failures: r.Failed}
	idx := map[string]int{}
	for _, res := range r.Results {
		i, ok := idx[res.Test]
		if !ok {
			i = len(out.Suites)
			idx[res.Test] = i
			out.Suites = append(out.Suites, junitSuite{Name: "policytest." + res.Test})
		}
		s := &out.Suites[i]
		c := junitCase{Name: res.Case, Classname: "policytest." + res.Test, File: res.File, Line: res.Line}
		s.Tests++
		if !res.Pass {
			s.Failures++
			msg := fmt.Sprintf("expected %s, got %s by %s", res.Expect, res.Got, res.Rule)
			c.Failure = &junitFailure{Message: msg, Text: fmt.Sprintf("%s:%d: %s %s", res.File, res.Line, msg, res.Message)}
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

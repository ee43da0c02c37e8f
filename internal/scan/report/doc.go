// Package report writes scan results as text for people (grouped by
// severity and object, optionally colored), as the JSON document of
// DESIGN.md, and as SARIF 2.1.0 for code-scanning tools. It does not decide
// what is a finding.
package report

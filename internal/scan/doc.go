// Package scan defines findings (rule, category, severity, object, position)
// and runs the scanner's rules over a model of a cluster's mesh config. It
// does not read files (see manifest) or format output (see report).
package scan

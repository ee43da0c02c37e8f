package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ReadYAML splits data (the contents of the file called file) into its YAML
// documents and calls each with every document's root node, in order.
// Empty and null documents are skipped. A syntax error ends the reading
// (the parser cannot resynchronize after one): the documents before it have
// been passed to each, and the error is an *Error naming the file and the
// line that broke. ReadYAML imposes no size limit; callers bound data.
//
// It is the one place meshward turns YAML text into nodes: ParseFile and
// the scanner's manifest loader both read through it, so the same broken
// file gives the same line in `meshward policy lint` and `meshward scan`.
func ReadYAML(file string, data []byte, each func(root *yaml.Node)) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return yamlError(file, data, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		each(root)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(file string, data []byte, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "did not find expected") {
			// yaml.v3 reports these parser errors at the 0-based line of
			// the collection being parsed, not at the line that broke it
			// (an indentation slip on line 26 showed as line 11).
			line++
			// In a block collection the line that broke is later (an
			// unclosed flow collection `{a: b` is best shown where it
			// opens, so those keep the reported line).
			block := m[2] == "did not find expected '-' indicator" || m[2] == "did not find expected key"
			if block {
				if at := problemLine(data, line, m[2]); at > line {
					return &Error{File: file, Line: at, Msg: fmt.Sprintf("invalid YAML: %s (check the indentation; the block starts at line %d)", m[2], line)}
				}
			}
		}
		if last := lastLine(data); line > last {
			// A file that ends inside a collection (`kind: [`) is
			// reported at the end of the input, which after a trailing
			// newline is a line past the last one: show the last.
			line = last
		}
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// lastLine is the number of the last line of data that is not blank.
func lastLine(data []byte) int {
	return bytes.Count(bytes.TrimRight(data, " \t\r\n"), []byte("\n")) + 1
}

// problemLine's bounds: it parses one prefix per line, on the error path
// only, for files of ordinary size.
const (
	maxProblemSearch = 2000
	maxProblemBytes  = 256 << 10
)

// problemLine finds the line a parser error really comes from: the first
// line after from such that the file cut after it fails with the same
// message. The cut before that line parses (or fails otherwise), so the
// line is where the structure broke. 0 when not found within the bound.
func problemLine(data []byte, from int, msg string) int {
	if len(data) > maxProblemBytes {
		return 0
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1] // after the final newline: no line
	}
	for n := from + 1; n <= len(lines) && n <= from+maxProblemSearch; n++ {
		if e := firstYAMLError(bytes.Join(lines[:n], nil)); e != nil && strings.HasSuffix(e.Error(), msg) {
			return n
		}
	}
	return 0
}

// firstYAMLError is the first syntax error in data's documents, or nil.
func firstYAMLError(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

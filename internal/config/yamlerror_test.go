package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A YAML syntax error names the line that broke, not the line where the
// enclosing block starts: an indentation slip deep in a services list was
// reported at the start of the list.
func TestYAMLErrorNamesTheBrokenLine(t *testing.T) {
	demo, err := os.ReadFile("../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(demo), "\n")
	for _, tc := range []struct {
		name string
		line int // 1-based
		edit func(string) string
	}{
		{"under-indented key in a list item", 26, func(l string) string { return strings.Replace(l, "      ", "     ", 1) }},
		{"under-indented key at the end of an item", 29, func(l string) string { return strings.Replace(l, "      ", "     ", 1) }},
		{"tab-free over-indented key", 26, func(l string) string { return "  " + l }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := append([]string(nil), lines...)
			broken[tc.line-1] = tc.edit(broken[tc.line-1])
			_, err := ParseFile("mesh.yaml", []byte(strings.Join(broken, "")))
			var el ErrorList
			if !errors.As(err, &el) || len(el) != 1 {
				t.Fatalf("ParseFile = %v, want one error", err)
			}
			if el[0].Line != tc.line || !strings.Contains(el[0].Msg, "invalid YAML") {
				t.Fatalf("error %q is at line %d, want line %d", el[0].Error(), el[0].Line, tc.line)
			}
		})
	}
}

// A syntax error's line is one the file has: a file that ends inside a
// collection is reported at its last line, not at the line after the final
// newline where the parser stopped.
func TestYAMLErrorLineIsInTheFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		line int
	}{
		{"unclosed on the only line", "kind: [\n", 1},
		{"unclosed, blank lines after", "kind: {a: b\n\n\n", 1},
		{"over-indented last line", "a:\n  b: 1\n c: 2\n", 3},
		{"unclosed in the middle", "a: 1\nb: [x,\nc: 2\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseFile("f.yaml", []byte(tc.in))
			el := Errors(err)
			if len(el) != 1 || el[0].Line != tc.line || !strings.Contains(el[0].Msg, "invalid YAML") {
				t.Fatalf("ParseFile = %v, want one invalid YAML error at line %d", err, tc.line)
			}
		})
	}
}

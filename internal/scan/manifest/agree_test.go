package manifest

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/config"
)

// TestYAMLErrorsAgreeWithLint: the same malformed file gives the same line
// and message from `meshward policy lint` (config.ParseFile) and from the
// scanner's loader; both read YAML through config.ReadYAML. (The scanner
// said line 4 where lint said line 5 when each had its own reader.)
func TestYAMLErrorsAgreeWithLint(t *testing.T) {
	t.Parallel()
	demo, err := os.ReadFile("../../../examples/demo/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demoLines := strings.SplitAfter(string(demo), "\n")
	demoLines[25] = strings.Replace(demoLines[25], "      ", "     ", 1) // under-indent line 26
	tests := []struct {
		name     string
		in       string
		wantLine int
	}{
		{"unclosed flow list", "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata:\n  name: [broken\n", 4},
		{"unclosed flow mapping", "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: shop\nspec:\n  services: []\n", 3},
		{"unclosed on the first line", "kind: [\n", 1},
		{"block indentation slip", strings.Join(demoLines, ""), 26},
		{"mapping value in a plain scalar", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a: b\n", 4},
		{"tab indentation", "apiVersion: v1\nkind: Service\nmetadata:\n\tname: a\n", 4},
		{"error in the second document", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n labels: {}\n", 9},
		{"invalid UTF-8", "apiVersion: v1\nkind: \xff\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, lintErr := config.ParseFile("f.yaml", []byte(tc.in))
			var lint *config.Error
			for _, e := range config.Errors(lintErr) {
				if strings.HasPrefix(e.Msg, "invalid YAML") {
					lint = e
				}
			}
			if lint == nil {
				t.Fatalf("config.ParseFile = %v, want an invalid YAML error", lintErr)
			}
			res := DecodeFile("f.yaml", []byte(tc.in))
			if len(res.Problems) != 1 {
				t.Fatalf("scanner problems = %v, want one", res.Problems)
			}
			scan := res.Problems[0]
			if scan.Line != lint.Line || scan.Err.Error() != lint.Msg {
				t.Errorf("scanner says %q, lint says %q", scan.Error(), lint.Error())
			}
			if lint.Line != tc.wantLine {
				t.Errorf("line %d (%s), want %d", lint.Line, lint.Error(), tc.wantLine)
			}
		})
	}
}

// TestFieldLinesAgreeWithLint: a field error names the same line in both:
// a mapping field's key line, not the first line of its block value.
func TestFieldLinesAgreeWithLint(t *testing.T) {
	t.Parallel()
	in := "apiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata:\n  namespace: shop\n"
	_, lintErr := config.ParseFile("f.yaml", []byte(in))
	lint := config.Errors(lintErr)
	if len(lint) != 1 || lint[0].Field != "metadata.name" {
		t.Fatalf("config.ParseFile = %v, want one error on metadata.name", lintErr)
	}
	_, err := Decode("f.yaml", []byte(in))
	var me *Error
	if !errors.As(err, &me) || me.Field != "metadata.name" {
		t.Fatalf("Decode = %v, want an error on metadata.name", err)
	}
	if me.Line != 3 || lint[0].Line != 3 {
		t.Errorf("scanner line %d (%v), lint line %d (%v); want both at metadata:, line 3", me.Line, err, lint[0].Line, lint[0])
	}
}

// TestNoOwnYAMLReader keeps YAML parsing with positions in one place: the
// manifest loader reads YAML only through config (ReadYAML, DecodeTree).
func TestNoOwnYAMLReader(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "yaml" {
				switch sel.Sel.Name {
				case "NewDecoder", "Unmarshal", "Decoder":
					t.Errorf("%s: yaml.%s: read YAML with config.ReadYAML", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
}

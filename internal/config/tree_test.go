package config

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestReadYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		wantLines []int // of each document's root
		wantErr   int   // line of the syntax error; -1 for none
	}{
		{"empty", "", nil, -1},
		{"comments only", "# nothing\n", nil, -1},
		{"empty and null documents are skipped", "---\n---\nnull\n---\na: 1\n---\n~\n", []int{5}, -1},
		{"several documents", "a: 1\n---\nb: 2\n---\n- c\n", []int{1, 3, 5}, -1},
		{"documents before an error are read", "a: 1\n---\nb: [\n", []int{1}, 3},
		// The document ends inside the mapping at "---": node content was
		// expected there.
		{"error first", "a: {\n---\nb: 2\n", nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []int
			err := ReadYAML("f.yaml", []byte(tc.in), func(root *yaml.Node) { got = append(got, root.Line) })
			if diff := cmp.Diff(tc.wantLines, got); diff != "" {
				t.Errorf("documents' lines (-want +got):\n%s", diff)
			}
			var e *Error
			switch {
			case tc.wantErr < 0 && err != nil:
				t.Errorf("ReadYAML = %v, want no error", err)
			case tc.wantErr >= 0 && (!errors.As(err, &e) || e.File != "f.yaml" || e.Line != tc.wantErr || !strings.HasPrefix(e.Msg, "invalid YAML: ")):
				t.Errorf("ReadYAML = %v, want f.yaml:%d: invalid YAML: ...", err, tc.wantErr)
			}
		})
	}
}

func TestDecodeTree(t *testing.T) {
	t.Parallel()
	in := `apiVersion: v1
kind: Service
metadata:
  name: web
  labels: &l
    app: web
spec:
  ports:
  - port: 80
    name: http
  - {port: 443, name: "https"}
  ratio: 0.5
  on: true
  hex: 0x10
  big: 99999999999999999999
  none: ~
  copy: *l
  merged:
    <<: {a: 1, b: 2}
    b: 3
`
	var root *yaml.Node
	if err := ReadYAML("f.yaml", []byte(in), func(n *yaml.Node) { root = n }); err != nil {
		t.Fatal(err)
	}
	tree, err := DecodeTree(root)
	if err != nil {
		t.Fatal(err)
	}
	wantValue := map[string]any{
		"apiVersion": "v1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": "web", "labels": map[string]any{"app": "web"}},
		"spec": map[string]any{
			"ports": []any{
				map[string]any{"port": int64(80), "name": "http"},
				map[string]any{"port": int64(443), "name": "https"},
			},
			"ratio":  0.5,
			"on":     true,
			"hex":    int64(16),
			"big":    1e20, // yaml.v3 resolves an integer too large for int64 as a float
			"none":   nil,
			"copy":   map[string]any{"app": "web"},
			"merged": map[string]any{"a": int64(1), "b": int64(3)},
		},
	}
	if diff := cmp.Diff(wantValue, tree.Value); diff != "" {
		t.Errorf("value (-want +got):\n%s", diff)
	}
	for path, want := range map[string]int{
		"metadata":          3, // the key, not the block's first line (4)
		"metadata.labels":   5,
		"spec.ports":        8,
		"spec.ports.0":      9,
		"spec.ports.1":      11,
		"spec.ports.1.name": 11,
		"spec.copy":         17, // where the alias is used
		"spec.copy.app":     6,  // the anchored value's own line
		"spec.merged.b":     20,
	} {
		if got := tree.Lines[path]; got != want {
			t.Errorf("Lines[%q] = %d, want %d", path, got, want)
		}
	}
}

// The strict decoder puts a field on the same line as DecodeTree: its key's.
func TestDocumentLineIsTheKeys(t *testing.T) {
	t.Parallel()
	docs, err := ParseFile("f.yaml", []byte("apiVersion: meshward.dev/v1\nkind: A\nmetadata:\n  name: a\nspec:\n  rules:\n  - name: r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Rules []struct {
			Name string `yaml:"name"`
		} `yaml:"rules"`
	}
	if err := docs[0].DecodeSpec(&spec); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]int{"metadata": 3, "metadata.name": 4, "spec": 5, "spec.rules": 6, "spec.rules[0]": 7, "spec.rules[0].name": 7} {
		if got := docs[0].LineOf(field); got != want {
			t.Errorf("LineOf(%q) = %d, want %d", field, got, want)
		}
	}
}

func TestDecodeTreeLimits(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 150) + strings.Repeat("]", 150)
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := 0, "a"; i < 8; i++ {
		name := string(rune('b' + i))
		bomb += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	for name, in := range map[string]string{"deep": deep, "alias bomb": bomb} {
		var root *yaml.Node
		if err := ReadYAML("f.yaml", []byte(in), func(n *yaml.Node) { root = n }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := DecodeTree(root); err == nil {
			t.Errorf("%s: DecodeTree succeeded, want a size error", name)
		}
	}
}

func yamlSeeds(f *testing.F) {
	for _, glob := range []string{"testdata/mesh/*.yaml", "testdata/yaml/*"} {
		files, _ := filepath.Glob(glob)
		for _, s := range files {
			b, err := os.ReadFile(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a {b: 1}\nc: *a\nd:\n  <<: *a\n  e: [1, 2.5, true, ~, \"s\"]\n"))
	f.Add([]byte("kind: [\n"))
	f.Add([]byte("a:\n  b: 1\n c: 2\n"))
}

var simpleKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// FuzzDecodeTree checks ReadYAML and DecodeTree against yaml.v3's own
// decoding into interface values (Unmarshal's), an independent converter:
// where it reads the documents into plain values, DecodeTree reads the
// same values. Every error is an *Error
// naming the file and a line inside it, and every recorded line is one the
// field's key is written on.
func FuzzDecodeTree(f *testing.F) {
	yamlSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		var roots []*yaml.Node
		err := ReadYAML("fuzz.yaml", data, func(n *yaml.Node) { roots = append(roots, n) })
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.yaml" || e.Line < 0 || e.Line > lastLine(data) {
				t.Fatalf("error %v is not an *Error inside the file (%d lines)", err, lastLine(data))
			}
		}
		lines := strings.Split(string(data), "\n")
		// Keys can be looked for on their line when none is quoted,
		// escaped, complex, merged or behind an alias.
		plainKeys := !strings.ContainsAny(string(data), "\\\"'?!&*|><\t\r%@`")
		var got []any
		for _, root := range roots {
			tree, terr := DecodeTree(root)
			if terr != nil {
				return
			}
			for p, l := range tree.Lines {
				if l < 1 || l > len(lines) {
					t.Fatalf("Lines[%q] = %d, outside the input's %d lines", p, l, len(lines))
				}
				key := p[strings.LastIndexByte(p, '.')+1:]
				if plainKeys && simpleKey.MatchString(key) && !strings.Contains(lines[l-1], key) {
					t.Fatalf("Lines[%q] = %d, but line %d (%q) does not hold the key", p, l, l, lines[l-1])
				}
			}
			if tree.Value != nil {
				got = append(got, tree.Value)
			}
		}
		if err != nil {
			return
		}
		// The oracle: every document through Unmarshal's decoder, the
		// null and empty ones left out as ReadYAML leaves them out.
		var want []any
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var v any
			derr := dec.Decode(&v)
			if errors.Is(derr, io.EOF) {
				break
			}
			if derr != nil {
				return // duplicate keys and the like: Unmarshal is stricter
			}
			p, ok := plain(v)
			if !ok {
				return
			}
			if p != nil {
				want = append(want, p)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DecodeTree differs from yaml.v3's decoder (-decoder +tree):\n%s", diff)
		}
	})
}

// plain converts Unmarshal's result to DecodeTree's shapes (int64 for
// integers), and reports false for what the two are allowed to differ on:
// non-string keys, numbers outside int64, NaN, binary and timestamps.
func plain(v any) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			p, ok := plain(e)
			if !ok {
				return nil, false
			}
			out[k] = p
		}
		return out, true
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			p, ok := plain(e)
			if !ok {
				return nil, false
			}
			out[i] = p
		}
		return out, true
	case int:
		return int64(t), true
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, false
		}
		return t, true
	case string:
		if _, err := strconv.ParseFloat(t, 64); err == nil {
			return nil, false // a number Unmarshal kept as text (too large for int)
		}
		return t, true
	case bool, nil:
		return t, true
	}
	return nil, false
}

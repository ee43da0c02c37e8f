package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits of DecodeTree, which reads whole clusters' manifests: larger than
// the strict decoder's, still bounded so an alias bomb stays cheap.
const (
	maxTreeNodes  = 1 << 20 // per document
	maxTreeDepth  = 100
	maxLinesDepth = 10 // field paths deeper than this get no line of their own
)

// Tree is one YAML document decoded into plain Go values, with the line of
// each field.
type Tree struct {
	// Value is a map[string]any, []any, string, bool, int64, float64 or nil.
	Value any
	// Lines maps dotted field paths ("spec.mtls.mode", "spec.rules.0", the
	// paths a walk of Value takes) to their line, by the rule of the strict
	// decoder's Document.LineOf: a mapping field is at its key's line (not
	// at the first line of a block value), a list item at its own. Paths
	// nested deeper than 10 levels are not recorded.
	Lines map[string]int
}

// DecodeTree decodes n (a root from ReadYAML) the way Kubernetes tools read
// YAML, not strictly: any keys, a repeated key's last value wins, merge keys
// (<<) are applied, numbers are int64 or float64. Its errors are about size:
// more than 2^20 nodes or 100 levels.
func DecodeTree(n *yaml.Node) (*Tree, error) {
	t := &treeDecoder{lines: map[string]int{}}
	v, err := t.value(n, "", 0)
	if err != nil {
		return nil, err
	}
	return &Tree{Value: v, Lines: t.lines}, nil
}

type treeDecoder struct {
	lines map[string]int
	nodes int
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// record sets path's line; a repeated key's line replaces the first, as
// its value does.
func (t *treeDecoder) record(path string, n *yaml.Node, depth int) {
	if depth < maxLinesDepth {
		t.lines[path] = n.Line
	}
}

func (t *treeDecoder) value(n *yaml.Node, path string, depth int) (any, error) {
	t.nodes++
	if t.nodes > maxTreeNodes {
		return nil, fmt.Errorf("document has more than %d nodes", maxTreeNodes)
	}
	if depth > maxTreeDepth {
		return nil, errors.New("document nests more than 100 levels")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return t.value(n.Content[0], path, depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		return t.value(n.Alias, path, depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Kind == yaml.ScalarNode {
				merged, err := t.value(vn, path, depth+1)
				if err != nil {
					return nil, err
				}
				if mm, ok := merged.(map[string]any); ok {
					for mk, mv := range mm {
						if _, exists := m[mk]; !exists {
							m[mk] = mv
						}
					}
				}
				continue
			}
			p := joinPath(path, k.Value)
			t.record(p, k, depth)
			v, err := t.value(vn, p, depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			p := joinPath(path, strconv.Itoa(i))
			t.record(p, e, depth)
			v, err := t.value(e, p, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		return scalarValue(n), nil
	}
	return nil, nil
}

// scalarValue is a scalar as plain Go: a value its tag promises but that
// does not parse (0x1G tagged !!int) stays a string.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return b
		}
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i
		}
	case "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	}
	return n.Value
}

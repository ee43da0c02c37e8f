package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"meshward.dev/meshward/internal/scan"
)

const (
	maxNodes     = 1 << 20 // per document, so alias bombs stay bounded
	maxLineDepth = 10      // field paths deeper than this get no line of their own
)

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func decodeYAML(name string, data []byte) ([]*scan.Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []*scan.Object
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			line := 0
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			msg = yamlLineRE.ReplaceAllString(msg, "")
			msg = strings.TrimLeft(msg, ": ")
			return nil, &Error{File: name, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		if root.Kind == yaml.SequenceNode {
			// A bare JSON array of objects.
			for _, item := range root.Content {
				o, err := nodeObjects(name, item)
				if err != nil {
					return nil, err
				}
				objs = append(objs, o...)
			}
			continue
		}
		o, err := nodeObjects(name, root)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
}

// nodeObjects turns one document (a mapping) into objects: one, or the
// items of a List, or none for a document that is nothing the scanner reads.
func nodeObjects(file string, n *yaml.Node) ([]*scan.Object, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: n.Line, Err: fmt.Errorf("document is a %s, want a mapping", nodeKind(n))}
	}
	c := &converter{lines: map[string]int{}}
	v, err := c.convert(n, "", 0)
	if err != nil {
		return nil, &Error{File: file, Line: n.Line, Err: err}
	}
	body := v.(map[string]any)
	kind, _ := body["kind"].(string)
	if items, ok := body["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		_ = items
		var out []*scan.Object
		for _, it := range mappingValue(n, "items").Content {
			o, err := nodeObjects(file, it)
			if err != nil {
				return nil, err
			}
			out = append(out, o...)
		}
		return out, nil
	}
	o, err := fromBody(file, body, c.lines, n.Line)
	if err != nil || o == nil {
		return nil, err
	}
	return []*scan.Object{o}, nil
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return &yaml.Node{}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		}
		return "string"
	}
	return "value"
}

type converter struct {
	lines map[string]int
	nodes int
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *converter) convert(n *yaml.Node, path string, depth int) (any, error) {
	c.nodes++
	if c.nodes > maxNodes {
		return nil, fmt.Errorf("document has more than %d nodes", maxNodes)
	}
	if depth > 100 {
		return nil, errors.New("document nests more than 100 levels")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.convert(n.Content[0], path, depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		return c.convert(n.Alias, path, depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			key := k.Value
			if key == "<<" && k.Kind == yaml.ScalarNode {
				merged, err := c.convert(vn, path, depth+1)
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
			p := join(path, key)
			if depth < maxLineDepth && c.lines != nil {
				c.lines[p] = k.Line
			}
			v, err := c.convert(vn, p, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			p := join(path, strconv.Itoa(i))
			if depth < maxLineDepth && c.lines != nil {
				c.lines[p] = e.Line
			}
			v, err := c.convert(e, p, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			b, err := strconv.ParseBool(strings.ToLower(n.Value))
			if err != nil {
				return n.Value, nil
			}
			return b, nil
		case "!!int":
			if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
				return i, nil
			}
			return n.Value, nil
		case "!!float":
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return f, nil
			}
			return n.Value, nil
		default:
			return n.Value, nil
		}
	}
	return nil, nil
}

// clusterScoped kinds have no namespace; every other Kubernetes kind
// without one lands in "default", as kubectl apply would put it.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "Node": true,
	"PersistentVolume": true, "StorageClass": true, "PriorityClass": true, "APIService": true,
	"ClusterIssuer": true, "GatewayClass": true, "IngressClass": true, "RuntimeClass": true,
	"PodSecurityPolicy": true, "CSIDriver": true,
}

// fromBody classifies one decoded document and builds its object. It
// returns nil, nil for documents the scanner does not read.
func fromBody(file string, body map[string]any, lines map[string]int, line int) (*scan.Object, error) {
	_, hasAPI := body["apiVersion"]
	kindV, hasKind := body["kind"]
	switch {
	case hasAPI || (hasKind && !isConsulEntryKind(kindV)):
		return kubeObject(file, body, lines, line)
	case hasKind || body["Kind"] != nil:
		return consulEntry(file, body, lines, line)
	case isConsulAgent(body):
		return &scan.Object{Kind: KindConsulAgentConfig, Name: baseName(file), File: file, Line: line, Body: body, Lines: lines}, nil
	case isHelmValues(body):
		return &scan.Object{Kind: KindHelmValues, Name: baseName(file), File: file, Line: line, Body: body, Lines: lines}, nil
	}
	return nil, nil
}

func baseName(file string) string {
	if file == Stdin {
		return "stdin"
	}
	return filepath.Base(file)
}

// FromMap builds an object from a decoded Kubernetes document (as a live
// cluster returns it), with no line information.
func FromMap(file string, body map[string]any) (*scan.Object, error) {
	return kubeObject(file, body, nil, 0)
}

func kubeObject(file string, body map[string]any, lines map[string]int, line int) (*scan.Object, error) {
	bad := func(field, format string, args ...any) error {
		l := line
		for p := field; p != ""; {
			if v, ok := lines[p]; ok {
				l = v
				break
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
		return &Error{File: file, Line: l, Field: field, Err: fmt.Errorf(format, args...)}
	}
	api, ok := body["apiVersion"].(string)
	if body["apiVersion"] != nil && !ok {
		return nil, bad("apiVersion", "is a %T, want a string", body["apiVersion"])
	}
	kind, ok := body["kind"].(string)
	if !ok || kind == "" {
		return nil, bad("kind", "missing or not a string")
	}
	var meta map[string]any
	switch t := body["metadata"].(type) {
	case map[string]any:
		meta = t
	case nil:
	default:
		return nil, bad("metadata", "is a %T, want a mapping", t)
	}
	o := &scan.Object{APIVersion: api, Kind: kind, File: file, Line: line, Body: body, Lines: lines}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &o.Name}, {"namespace", &o.Namespace}} {
		switch v := meta[f.key].(type) {
		case string:
			*f.dst = v
		case nil:
		case int64, float64, bool:
			*f.dst = fmt.Sprint(v)
		default:
			return nil, bad("metadata."+f.key, "is a %T, want a string", v)
		}
	}
	if o.Name == "" {
		if gn, ok := meta["generateName"].(string); ok {
			o.Name = gn
		} else {
			return nil, bad("metadata.name", "missing")
		}
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{{"labels", &o.Labels}, {"annotations", &o.Annotations}} {
		switch v := meta[f.key].(type) {
		case map[string]any:
			*f.dst = scan.StringMap(meta, f.key)
		case nil:
		default:
			return nil, bad("metadata."+f.key, "is a %T, want a mapping", v)
		}
	}
	global := clusterScoped[kind] || (strings.HasPrefix(api, "meshward.dev/") && kind != "AccessPolicy")
	switch {
	case global:
		o.Namespace = ""
	case o.Namespace == "":
		o.Namespace = "default"
	}
	if _, ok := body["spec"]; ok {
		if _, isMap := body["spec"].(map[string]any); !isMap && body["spec"] != nil {
			return nil, bad("spec", "is a %T, want a mapping", body["spec"])
		}
	}
	return o, nil
}

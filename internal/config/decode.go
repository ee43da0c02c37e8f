package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile file from exhausting the decoder (alias
// expansion, deep nesting).
const (
	maxDepth = 64
	maxNodes = 200000
)

var (
	yamlNodeType = reflect.TypeOf(yaml.Node{})
	durationType = reflect.TypeOf(time.Duration(0))
)

type decoder struct {
	d     *Document
	errs  ErrorList
	nodes int
}

// decode walks n and v together. It is strict: a mapping key that is not a
// field of the struct, a repeated key, and a value of the wrong shape are
// errors; decoding continues past them to collect the rest.
func (d *Document) decode(n *yaml.Node, out any, path string) ErrorList {
	dec := &decoder{d: d}
	dec.value(n, reflect.ValueOf(out).Elem(), path, 0)
	return dec.errs
}

func (dec *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := dec.d.Line
	if n != nil && n.Line > 0 {
		line = n.Line
	}
	dec.errs = append(dec.errs, &Error{File: dec.d.File, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// line records the line of path the first time it is seen. A mapping
// field is at its key's line, as in DecodeTree (a block value starts on the
// line after its key, and an error about the field belongs on the key); a
// list item, or an alias, at its own.
func (dec *decoder) line(path string, n *yaml.Node) {
	if path == "" {
		return
	}
	if _, seen := dec.d.lines[path]; !seen {
		dec.d.lines[path] = n.Line
	}
}

func (dec *decoder) value(n *yaml.Node, v reflect.Value, path string, depth int) {
	dec.nodes++
	if dec.nodes > maxNodes || depth > maxDepth {
		if dec.nodes == maxNodes+1 || depth == maxDepth+1 {
			dec.errorf(n, path, "document is too large or too deeply nested")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			dec.errorf(n, path, "unknown alias")
			return
		}
		target := *n.Alias
		target.Line = n.Line // report errors where the alias is used
		dec.value(&target, v, path, depth+1)
		return
	}
	dec.line(path, n)
	if v.Type() == yamlNodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		dec.value(n, v.Elem(), path, depth+1)
	case reflect.Struct:
		dec.structValue(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			dec.errorf(n, path, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			dec.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			dec.errorf(n, path, "must be a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				dec.errorf(k, path, "keys must be strings")
				continue
			}
			if seen[k.Value] {
				dec.errorf(k, path+"."+k.Value, "duplicate key")
				continue
			}
			seen[k.Value] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			dec.line(path+"."+k.Value, k)
			dec.value(val, ev, path+"."+k.Value, depth+1)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	default:
		dec.scalar(n, v, path)
	}
}

func (dec *decoder) structValue(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		dec.errorf(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		idx, ok := fields.index[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			dec.errorf(k, path, "keys must be strings")
		case seen[k.Value]:
			dec.errorf(k, sub, "duplicate field")
		case !ok:
			dec.errorf(k, sub, "unknown field (allowed: %s)", strings.Join(fields.names, ", "))
		default:
			seen[k.Value] = true
			dec.line(sub, k)
			dec.value(val, v.Field(idx), sub, depth+1)
		}
	}
}

func (dec *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		dec.errorf(n, path, "must be a single value, got %s", describe(n))
		return
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(n.Value)
		if err != nil || n.Tag != "!!str" {
			dec.errorf(n, path, "%q is not a duration (like 1h, 30m or 168h)", n.Value)
			return
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool" {
			dec.errorf(n, path, "must be a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64 || v.Kind() == reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Tag != "!!int" || err != nil || v.OverflowInt(i) {
			dec.errorf(n, path, "must be an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Tag != "!!bool" || err != nil {
			dec.errorf(n, path, "must be true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	default:
		dec.errorf(n, path, "cannot decode into %s", v.Type())
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	default:
		return "an unexpected node"
	}
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name[:1]) + sf.Name[1:]
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	fieldCache.Store(t, f)
	return f
}

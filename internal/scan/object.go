package scan

import (
	"strconv"
	"strings"
)

// Object is one decoded configuration object (a Kubernetes resource, a
// Consul config entry or agent config, a meshward document) together with
// where it came from.
type Object struct {
	APIVersion  string
	Kind        string
	Namespace   string // "" for cluster-scoped objects
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	File        string // as given on the command line; "-" for stdin
	Line        int    // line of the document's first key, 1-based
	// Body is the whole decoded document: maps, slices, strings, bools,
	// int64/float64 numbers.
	Body map[string]any
	// Lines maps dotted field paths ("spec.mtls.mode", "spec.rules.0") to
	// their line, where the decoder knows them.
	Lines map[string]int
}

// Ref is the identity CI tools compare findings by.
type Ref struct {
	Kind, Namespace, Name string
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Ref returns the object's (kind, namespace, name).
func (o *Object) Ref() Ref { return Ref{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name} }

// LineOf returns the line of the field at the dotted path, or of the
// closest ancestor the decoder recorded, or of the object.
func (o *Object) LineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := o.Lines[p]; ok {
			return l
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return o.Line
}

// Get returns the value at the dotted path in the body, or nil.
func (o *Object) Get(path string) any { return Get(o.Body, path) }

// Str returns the string at the dotted path, or "".
func (o *Object) Str(path string) string { return Str(o.Body, path) }

// Map returns the mapping at the dotted path, or nil.
func (o *Object) Map(path string) map[string]any { return Map(o.Body, path) }

// List returns the sequence at the dotted path, or nil.
func (o *Object) List(path string) []any { return List(o.Body, path) }

// Get walks v along a dotted path of map keys and sequence indexes.
func Get(v any, path string) any {
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		switch t := v.(type) {
		case map[string]any:
			v = t[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

// Str is Get as a string; numbers and bools are formatted.
func Str(v any, path string) string { return scalar(Get(v, path)) }

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return ""
	}
}

// Map is Get as a mapping.
func Map(v any, path string) map[string]any {
	m, _ := Get(v, path).(map[string]any)
	return m
}

// List is Get as a sequence. A single mapping is returned as a one-element
// list, since HCL and hand-written YAML often drop the brackets.
func List(v any, path string) []any {
	switch t := Get(v, path).(type) {
	case []any:
		return t
	case map[string]any:
		return []any{t}
	default:
		return nil
	}
}

// Bool reports the boolean at path and whether it was set. Strings "true"
// and "false" count, as Kubernetes annotations are strings.
func Bool(v any, path string) (val, set bool) {
	switch t := Get(v, path).(type) {
	case bool:
		return t, true
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true", "yes", "on", "enabled":
			return true, true
		case "false", "no", "off", "disabled":
			return false, true
		}
	}
	return false, false
}

// Strings returns the sequence at path as strings, skipping non-strings.
func Strings(v any, path string) []string {
	var out []string
	for _, e := range List(v, path) {
		switch s := e.(type) {
		case string:
			out = append(out, s)
		case int64:
			out = append(out, strconv.FormatInt(s, 10))
		case int:
			out = append(out, strconv.Itoa(s))
		case float64:
			out = append(out, strconv.FormatFloat(s, 'f', -1, 64))
		}
	}
	return out
}

// StringMap returns the mapping at path with its string values.
func StringMap(v any, path string) map[string]string {
	m := Map(v, path)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = scalar(v)
	}
	return out
}

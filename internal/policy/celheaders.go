package policy

import (
	"net/http"
	"reflect"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// celHeaders is request.headers for CEL: a map(string, string) read
// straight from the http.Header. Lookups (m["x-env"], "x-env" in m) match
// names case-insensitively without building a map; anything else
// (iteration, equality, conversion) works on a materialized copy with
// lower-case names and repeated values joined with ", ".
type celHeaders struct {
	h    http.Header
	full traits.Mapper
}

var _ traits.Mapper = (*celHeaders)(nil)

func (m *celHeaders) materialize() traits.Mapper {
	if m.full == nil {
		c := make(map[string]string, len(m.h))
		for k, v := range m.h {
			c[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		m.full = types.NewStringStringMap(types.DefaultTypeAdapter, c)
	}
	return m.full
}

func (m *celHeaders) lookup(name string) ([]string, bool) {
	if v, ok := m.h[name]; ok {
		return v, true
	}
	for k, v := range m.h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// Find implements traits.Mapper.
func (m *celHeaders) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return m.materialize().Find(key)
	}
	v, ok := m.lookup(string(k))
	if !ok || len(v) == 0 {
		return nil, false
	}
	if len(v) == 1 {
		return types.String(v[0]), true
	}
	return types.String(strings.Join(v, ", ")), true
}

// Get implements traits.Indexer.
func (m *celHeaders) Get(key ref.Val) ref.Val {
	if v, ok := m.Find(key); ok {
		return v
	}
	return m.materialize().Get(key) // the map's own "no such key" error
}

// Contains implements traits.Container.
func (m *celHeaders) Contains(key ref.Val) ref.Val {
	_, ok := m.Find(key)
	return types.Bool(ok)
}

func (m *celHeaders) Size() ref.Val               { return m.materialize().Size() }
func (m *celHeaders) Iterator() traits.Iterator   { return m.materialize().Iterator() }
func (m *celHeaders) Type() ref.Type              { return types.MapType }
func (m *celHeaders) Value() any                  { return m.materialize().Value() }
func (m *celHeaders) Equal(other ref.Val) ref.Val { return m.materialize().Equal(other) }
func (m *celHeaders) ConvertToType(t ref.Type) ref.Val {
	return m.materialize().ConvertToType(t)
}
func (m *celHeaders) ConvertToNative(t reflect.Type) (any, error) {
	return m.materialize().ConvertToNative(t)
}

package scan

import (
	"fmt"
	"reflect"
)

// FromFamily returns r with a Check that keeps the findings of f carrying
// r's ID. Several rules share one family function (one effective-state
// walk); f runs once per model.
func FromFamily(r Rule, f func(*Model) []Finding) Rule {
	key := fmt.Sprintf("family:%x", reflect.ValueOf(f).Pointer())
	id := r.ID
	r.Check = func(m *Model) []Finding {
		all := m.Memo(key, func() any { return f(m) }).([]Finding)
		var out []Finding
		for _, fd := range all {
			if fd.Rule == id {
				out = append(out, fd)
			}
		}
		return out
	}
	return r
}

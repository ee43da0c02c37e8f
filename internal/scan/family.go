package scan

// Family is one check that several rules share (one effective-state walk):
// it runs once per model, and each of its rules keeps the findings that
// carry the rule's ID. The result is memoized under the *Family itself, so
// two families never share results, even when they are closures of one
// function literal (whose code pointers are equal).
type Family struct {
	check func(*Model) []Finding
}

// NewFamily returns a family running check.
func NewFamily(check func(*Model) []Finding) *Family { return &Family{check: check} }

// Rule returns r with a Check that keeps the family's findings carrying
// r's ID.
func (f *Family) Rule(r Rule) Rule {
	id := r.ID
	r.Check = func(m *Model) []Finding {
		all := m.Memo(f, func() any { return f.check(m) }).([]Finding)
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

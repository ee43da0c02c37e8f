package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, located by file, line and
// field path (spec.rules[0].to[0].methods[1]).
type Error struct {
	File  string
	Line  int // 1-based; 0 when unknown
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every error found in a set of files. It is an error itself,
// one line per entry.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the list by file, line and field.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
}

// Err returns nil for an empty list, and the sorted list otherwise.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}

// Errors flattens err into its config errors: an ErrorList, a single *Error,
// or nil when err carries none.
func Errors(err error) ErrorList {
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e *Error
	if errors.As(err, &e) {
		return ErrorList{e}
	}
	return nil
}

// Merge appends the errors of more that are not about a field (or a child of
// a field) l already has an error for: validation that runs after a failed
// decode does not repeat the decode error in other words.
func (l ErrorList) Merge(more ErrorList) ErrorList {
	out := l
	for _, e := range more {
		dup := false
		for _, have := range l {
			if have.File == e.File && have.Field != "" && (e.Field == have.Field || strings.HasPrefix(e.Field, have.Field+".") || strings.HasPrefix(e.Field, have.Field+"[")) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

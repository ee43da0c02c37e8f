package sidecar

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

func paths(ds []*apiv1.Deny) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Path)
	}
	return out
}

func denies(prefix string, n int) []*apiv1.Deny {
	out := make([]*apiv1.Deny, 0, n)
	for i := range n {
		out = append(out, &apiv1.Deny{Path: fmt.Sprintf("/%s%d", prefix, i)})
	}
	return out
}

// TestDenyBufferRequeue: the denies of a report whose Send failed go back
// ahead of those buffered since, within the bound, and whatever the bound
// turns away is counted together with what the report had counted.
func TestDenyBufferRequeue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		unsent      []*apiv1.Deny
		unsentDrops int64
		later       []*apiv1.Deny
		wantPaths   []string
		wantDropped int64
	}{
		{"nothing", nil, 0, nil, []string{}, 0},
		{"unsent first", denies("a", 2), 0, denies("b", 1), []string{"/a0", "/a1", "/b0"}, 0},
		{"drops carried over", denies("a", 1), 7, nil, []string{"/a0"}, 7},
		{"bound holds", denies("a", maxDeniesPerReport), 1, denies("b", 3), paths(denies("a", maxDeniesPerReport)), 1 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b denyBuffer
			for _, d := range tc.later {
				b.add(d)
			}
			b.requeue(&apiv1.WorkloadReport{Denies: tc.unsent, DeniesDropped: tc.unsentDrops})
			var r apiv1.WorkloadReport
			b.drain(&r)
			if diff := cmp.Diff(tc.wantPaths, paths(r.Denies)); diff != "" {
				t.Errorf("denies (-want +got):\n%s", diff)
			}
			if r.DeniesDropped != tc.wantDropped {
				t.Errorf("dropped = %d, want %d", r.DeniesDropped, tc.wantDropped)
			}
		})
	}
}

func TestClipDenyField(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "/a", 10, "/a"},
		{"exact", "/abcdefghi", 10, "/abcdefghi"},
		{"ascii", "/abcdefghijkl", 5, "/abcd...(8 more bytes)"},
		// "é" is two bytes: a cut inside it moves back to its start.
		{"rune boundary", "/abcé", 5, "/abc...(2 more bytes)"},
		// An escape observe.Printable wrote is kept whole or cut whole.
		{"inside \\x escape", `/a\xff\xff`, 4, `/a...(8 more bytes)`},
		{"after \\x escape", `/a\xff\xff`, 6, `/a\xff...(4 more bytes)`},
		{"inside \\u escape", `/\u00e9z`, 4, `/...(7 more bytes)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := clip(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("clip(%q, %d) = %q is not valid UTF-8", tc.in, tc.max, got)
			}
		})
	}
}

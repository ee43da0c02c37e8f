// Package ruletest runs scanner rules on small inline manifests, for the
// rule packages' own tests: every rule gets a case that fires it and one
// that must not. It checks each rule on its own (its Check), not the
// scanner's one-finding-per-object selection; the corpus test covers that.
package ruletest

import (
	"sort"
	"testing"
	"time"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
)

// Now is the evaluation time of every case: certificates in cases are
// issued relative to it.
var Now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// Case is one rule on one small cluster.
type Case struct {
	Name string
	Rule string // the rule's ID
	// Files maps a file name to its content, decoded by the scanner's own
	// loader (manifest.Decode: the extension picks HCL, else YAML or JSON).
	Files map[string]string
	Fires bool // whether Rule must find something
}

// Run runs every case on rules, and fails unless each rule of rules has at
// least one case that fires it and one that must not.
func Run(t *testing.T, rules []scan.Rule, cases []Case) {
	t.Helper()
	byID := map[string]scan.Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	pos, neg := map[string]bool{}, map[string]bool{}
	for _, tc := range cases {
		if tc.Fires {
			pos[tc.Rule] = true
		} else {
			neg[tc.Rule] = true
		}
	}
	for _, r := range rules {
		if !pos[r.ID] || !neg[r.ID] {
			t.Errorf("rule %s lacks a case that fires (%v) or one that must not (%v)", r.ID, pos[r.ID], neg[r.ID])
		}
	}
	for _, tc := range cases {
		t.Run(tc.Rule+"/"+tc.Name, func(t *testing.T) {
			t.Parallel()
			r, ok := byID[tc.Rule]
			if !ok {
				t.Fatalf("no rule %s in this package", tc.Rule)
			}
			names := make([]string, 0, len(tc.Files))
			for n := range tc.Files {
				names = append(names, n)
			}
			sort.Strings(names)
			var objs []*scan.Object
			for _, n := range names {
				o, err := manifest.Decode(n, []byte(tc.Files[n]))
				if err != nil {
					t.Fatalf("decode %s: %v", n, err)
				}
				objs = append(objs, o...)
			}
			var got []scan.Finding
			for _, f := range r.Check(scan.NewModel(objs, Now)) {
				if f.Rule == r.ID {
					got = append(got, f)
				}
			}
			switch {
			case tc.Fires && len(got) == 0:
				t.Errorf("%s found nothing; want a finding", r.ID)
			case !tc.Fires && len(got) > 0:
				for _, f := range got {
					t.Errorf("%s found %s/%s/%s: %s; want nothing", r.ID, f.Kind, f.Namespace, f.Name, f.Message)
				}
			}
		})
	}
}

// Fires is a case in which rule must find something.
func Fires(name, rule string, files map[string]string) Case {
	return Case{Name: name, Rule: rule, Files: files, Fires: true}
}

// Clean is a case in which rule must find nothing.
func Clean(name, rule string, files map[string]string) Case {
	return Case{Name: name, Rule: rule, Files: files}
}

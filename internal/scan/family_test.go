package scan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFamilyMemo: a family's check runs once per model however many rules
// share it, and two families never share results, even when both are
// closures of one function literal (equal code pointers, which the memo was
// once keyed on).
func TestFamilyMemo(t *testing.T) {
	t.Parallel()
	runs := map[string]int{}
	var fams []*Family
	for _, ids := range [][]string{{"A-1", "A-2"}, {"B-1"}} { // one literal, one closure per family
		fams = append(fams, NewFamily(func(*Model) []Finding {
			runs[ids[0]]++
			var out []Finding
			for _, id := range ids {
				out = append(out, Finding{Rule: id, Message: id})
			}
			return out
		}))
	}
	a, b := fams[0], fams[1]
	rules := []Rule{a.Rule(Rule{ID: "A-1"}), a.Rule(Rule{ID: "A-2"}), b.Rule(Rule{ID: "B-1"})}
	m := NewModel(nil, time.Time{})
	var got []string
	for _, r := range rules {
		for _, f := range r.Check(m) {
			got = append(got, r.ID+":"+f.Rule)
		}
	}
	if diff := cmp.Diff([]string{"A-1:A-1", "A-2:A-2", "B-1:B-1"}, got); diff != "" {
		t.Errorf("findings per rule (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"A-1": 1, "B-1": 1}, runs); diff != "" {
		t.Errorf("check runs per family (-want +got):\n%s", diff)
	}
}

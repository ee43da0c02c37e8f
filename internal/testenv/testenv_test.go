package testenv

import (
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for a test so that Tool's Fatal and Skip can be
// observed instead of ending this test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = args[0].(string); runtime.Goexit() }
func (r *recorder) Skip(args ...any)  { r.skip = args[0].(string); runtime.Goexit() }
func (r *recorder) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() { defer close(done); fn(r) }()
	<-done
}

func TestToolMissing(t *testing.T) {
	for _, tc := range []struct {
		name, ci  string
		wantFatal bool
	}{
		{"developer machine skips", "", false},
		{"CI fails", "true", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			r.run(func(tb testing.TB) { Tool(tb, "meshward-no-such-tool", "no-such-package") })
			got := r.skip
			if tc.wantFatal {
				got = r.fatal
			}
			if !strings.Contains(got, "no-such-package") {
				t.Fatalf("fatal=%q skip=%q; want the package named in the %s", r.fatal, r.skip, map[bool]string{true: "failure", false: "skip"}[tc.wantFatal])
			}
		})
	}
}

func TestToolFound(t *testing.T) {
	if p := Tool(t, "sh", "dash"); !strings.HasSuffix(p, "/sh") {
		t.Fatalf("Tool(sh) = %q", p)
	}
}

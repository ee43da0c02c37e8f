package gotune

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + Setting}},
		{[]string{"GODEBUG="}, []string{"GODEBUG=" + Setting}},
		{[]string{"GODEBUG=http2client=0", "A=b"}, []string{"GODEBUG=http2client=0," + Setting, "A=b"}},
		{[]string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}}, // the user's choice wins
		{[]string{"GODEBUG=gctrace=1, schedtrace=5"}, []string{"GODEBUG=gctrace=1, schedtrace=5"}},
	}
	for _, tc := range cases {
		if got := Env(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Env(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestReexec runs this test binary as a child that calls Reexec and
// prints its GODEBUG: the re-executed process has the setting, and no
// loop happens (the child exits normally).
func TestReexec(t *testing.T) {
	if os.Getenv("GOTUNE_CHILD") == "1" {
		if err := Reexec(); err != nil {
			t.Fatal(err)
		}
		fmt.Println("GODEBUG=" + os.Getenv("GODEBUG"))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReexec$", "-test.v")
	cmd.Env = append(os.Environ(), "GOTUNE_CHILD=1", "GODEBUG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "GODEBUG="+Setting+"\n") {
		t.Errorf("child output lacks the setting:\n%s", out)
	}
}

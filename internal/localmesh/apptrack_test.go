package localmesh

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"meshward.dev/meshward/internal/proxy/workloadapi"
)

// A sidecar hears the app's state when it starts (also after a restart of
// its own) and every change after.
func TestAppTracker(t *testing.T) {
	a := newAppTracker()
	defer a.close()
	attach := func() *bufio.Reader {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		a.attach(w)
		return bufio.NewReader(r)
	}
	next := func(r *bufio.Reader) string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	self, err := workloadapi.AppOf(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	first := attach()
	if got := next(first); got != "-\n" {
		t.Fatalf("before the app starts: %q; want -", got)
	}
	if err := a.started(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if got, want := next(first), self.String()+"\n"; got != want {
		t.Fatalf("app started: %q; want %q", got, want)
	}
	second := attach() // the sidecar restarted
	if got, want := next(second), self.String()+"\n"; got != want {
		t.Fatalf("restarted sidecar hears %q; want %q", got, want)
	}
	a.exited()
	if got := next(second); got != "-\n" {
		t.Fatalf("app exited: %q; want -", got)
	}
	if err := a.started(1 << 30); err == nil {
		t.Fatal("a pid that does not exist was recorded")
	}
	if got := next(second); got != fmt.Sprintf("%s\n", "-") {
		t.Fatalf("unreadable app: %q; want -", got)
	}
}

package localmesh

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"meshward.dev/meshward/internal/config"
)

// An app that exits at start is given up on after maxCrashes runs, and
// the notice shows its exit code and its last output, so up can say why.
func TestProcessGivesUpOnAnAppThatKeepsExiting(t *testing.T) {
	var mu sync.Mutex
	var notices []string
	p := &process{
		name: "catalog",
		prepare: func(ctx context.Context) (*exec.Cmd, error) {
			return exec.CommandContext(ctx, "sh", "-c", "echo starting; echo boom >&2; exit 3"), nil
		},
		out: io.Discard,
		notice: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			notices = append(notices, fmt.Sprintf(format, args...))
		},
		started:    make(chan struct{}, 8),
		maxCrashes: 3,
		tail:       newTailBuffer(20),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("run kept restarting an app that exits at start; it should give up after 3 runs")
	}
	exits, last, gaveUp := p.status.get()
	if !gaveUp || exits != 3 || last != "exit code 3" {
		t.Fatalf("status = %d exits, last %q, gave up %v; want 3, \"exit code 3\", true", exits, last, gaveUp)
	}
	mu.Lock()
	defer mu.Unlock()
	final := notices[len(notices)-1]
	for _, want := range []string{"catalog keeps exiting (exit code 3, 3 times in a row)", "| starting", "| boom"} {
		if !strings.Contains(final, want) {
			t.Errorf("the give-up notice %q does not contain %q", final, want)
		}
	}
}

// The tail keeps the last lines only, and a line still being written.
func TestTailBufferKeepsTheLastLines(t *testing.T) {
	tb := newTailBuffer(2)
	if got := tb.String(); got != "  (no output)" {
		t.Fatalf("empty tail = %q", got)
	}
	fmt.Fprint(tb, "one\ntwo\nth")
	fmt.Fprint(tb, "ree\nfour")
	if got, want := tb.String(), "  | two\n  | three\n  | four"; got != want {
		t.Fatalf("tail = %q, want %q", got, want)
	}
	// A line with no end is bounded, so an app writing without newlines
	// cannot grow the supervisor's memory.
	tb.Write(bytes.Repeat([]byte("x"), 1<<20))
	if n := len(tb.String()); n > 8192 {
		t.Fatalf("tail grew to %d bytes on one endless line", n)
	}
}

// waitApp says why an app that was given up on is not ready, naming its
// exit, instead of waiting out the startup bound.
func TestWaitAppNamesTheExitOfAGivenUpApp(t *testing.T) {
	var out bytes.Buffer
	s := &Supervisor{cfg: Config{Out: NewOutput(&out, false)}}
	app := &process{}
	app.status.exited("exit code 3", false)
	app.status.exited("exit code 3", true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := s.waitApp(ctx, &Service{Name: "catalog", App: "127.0.0.1:1"}, app)
	want := "catalog is not running: it exited (exit code 3) 2 times in a row and was given up on"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("waitApp = %q, want it to start with %q", got, want)
	}
}

// An app runs in the directory of its mesh.yaml, so a relative command
// (./bin/app) and relative files it opens resolve there, wherever up was
// started (docs/configuration.md, `command`).
func TestAppRunsInTheMeshFilesDirectory(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\npwd\n"
	if err := os.WriteFile(filepath.Join(dir, "app.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{cfg: Config{Mesh: &config.Mesh{File: filepath.Join(dir, "mesh.yaml"), TrustDomain: "shop.local"}}}
	cmd, err := s.appCmd(context.Background(), &Service{Name: "app", Namespace: "default"}, config.Service{Name: "app", Command: []string{"./app.sh"}, Port: 8080}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output() // run from the test's own directory
	if err != nil {
		t.Fatalf("./app.sh did not resolve against the mesh file's directory: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != dir {
		t.Fatalf("app ran in %s, want %s", got, dir)
	}
}

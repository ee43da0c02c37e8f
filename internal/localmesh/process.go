package localmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"meshward.dev/meshward/internal/backoff"
)

// tailBuffer keeps the last lines written to it, for the message that
// says why an app was given up on.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	part  string
	max   int
}

func newTailBuffer(lines int) *tailBuffer { return &tailBuffer{max: lines} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	if len(t.part) > 4096 {
		t.part = t.part[:4096]
	}
	for _, l := range parts[:len(parts)-1] {
		t.lines = append(t.lines, l)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

// String is the kept lines, indented, or a note that there were none.
func (t *tailBuffer) String() string {
	if t == nil {
		return "  (no output)"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.part != "" {
		lines = append(lines[:len(lines):len(lines)], t.part)
	}
	if len(lines) == 0 {
		return "  (no output)"
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// Restart backoff bounds for crashed components.
const (
	minRestart = 500 * time.Millisecond
	maxRestart = 30 * time.Second
	// stable is how long a component must run before its backoff resets.
	stable = 10 * time.Second
	// stopGrace is how long a component gets between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
)

// restartBackoff is the delay before each restart: doubling from
// minRestart to maxRestart, exact (the notice says how long).
func restartBackoff() backoff.Backoff {
	return backoff.Backoff{Min: minRestart, Max: maxRestart}
}

// process is one supervised child: it is (re)started by run until ctx is
// cancelled, then stopped gracefully.
type process struct {
	name string
	// prepare builds the command for each (re)start, e.g. with a fresh
	// join token for a sidecar.
	prepare func(ctx context.Context) (*exec.Cmd, error)
	out     io.Writer
	notice  func(format string, args ...any)
	// started is signalled (once per start) when the command is running.
	started chan struct{}
	// onStart and onExit, when set, are called with each run's pid once
	// it runs (before it is waited for) and after it has exited.
	onStart func(pid int) error
	onExit  func()
	// maxCrashes, when set, is how many runs in a row may end before they
	// were stable (an app that exits at start) until run gives up; the
	// last output is kept in tail to show why.
	maxCrashes int
	tail       *tailBuffer
	// status is what the readiness wait reads: the last exit and whether
	// run gave up.
	status processStatus
}

// processStatus is a process's state for whoever waits on it.
type processStatus struct {
	mu       sync.Mutex
	exits    int    // runs that ended
	lastExit string // "exit code 3"
	gaveUp   bool
}

func (s *processStatus) get() (exits int, lastExit string, gaveUp bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exits, s.lastExit, s.gaveUp
}

func (s *processStatus) exited(reason string, gaveUp bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exits++
	s.lastExit, s.gaveUp = reason, gaveUp
}

// run keeps the process running until ctx ends. A process that exits is
// reported and restarted with exponential backoff.
func (p *process) run(ctx context.Context) {
	restart := restartBackoff()
	crashes := 0
	for ctx.Err() == nil {
		cmd, err := p.prepare(ctx)
		if err != nil {
			delay := restart.Next()
			p.notice("%s: cannot start: %v (retrying in %s)", p.name, err, delay)
			if !sleepCtx(ctx, delay) {
				return
			}
			continue
		}
		out := p.out
		if p.tail != nil {
			out = io.MultiWriter(p.out, p.tail)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
		cmd.Cancel = func() error { return terminate(cmd) }
		cmd.WaitDelay = stopGrace
		start := time.Now()
		err = cmd.Start()
		// The child has its own copies of the files handed to it.
		for _, f := range cmd.ExtraFiles {
			_ = f.Close()
		}
		if err != nil {
			delay := restart.Next()
			p.notice("%s: cannot start: %v (retrying in %s)", p.name, err, delay)
			if !sleepCtx(ctx, delay) {
				return
			}
			continue
		}
		if p.onStart != nil {
			if err := p.onStart(cmd.Process.Pid); err != nil {
				p.notice("%s: %v", p.name, err)
			}
		}
		select {
		case p.started <- struct{}{}:
		default:
		}
		err = cmd.Wait()
		if p.onExit != nil {
			p.onExit()
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > stable {
			restart.Reset()
			crashes = 0
		}
		crashes++
		reason := exitReason(err)
		if p.maxCrashes > 0 && crashes >= p.maxCrashes {
			p.status.exited(reason, true)
			p.notice("%s keeps exiting (%s, %d times in a row); giving up on it. Its last output:\n%s", p.name, reason, crashes, p.tail.String())
			return
		}
		p.status.exited(reason, false)
		delay := restart.Next()
		p.notice("%s exited (%s); restarting in %s", p.name, reason, delay)
		if !sleepCtx(ctx, delay) {
			return
		}
	}
}

// terminate sends SIGTERM to the child's process group (so an app's own
// children stop too); exec escalates to SIGKILL after WaitDelay.
func terminate(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return cmd.Process.Signal(os.Interrupt)
	}
	return nil
}

func exitReason(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by %s", ws.Signal())
		}
		return fmt.Sprintf("exit code %d", ee.ExitCode())
	}
	if err == nil {
		return "exit code 0"
	}
	return err.Error()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

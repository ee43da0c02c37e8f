package localmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Restart backoff bounds for crashed components.
const (
	minRestart = 500 * time.Millisecond
	maxRestart = 30 * time.Second
	// stable is how long a component must run before its backoff resets.
	stable = 10 * time.Second
	// stopGrace is how long a component gets between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
)

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
}

// run keeps the process running until ctx ends. A process that exits is
// reported and restarted with exponential backoff.
func (p *process) run(ctx context.Context) {
	backoff := minRestart
	for ctx.Err() == nil {
		cmd, err := p.prepare(ctx)
		if err != nil {
			p.notice("%s: cannot start: %v (retrying in %s)", p.name, err, backoff)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxRestart)
			continue
		}
		cmd.Stdout, cmd.Stderr = p.out, p.out
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
			p.notice("%s: cannot start: %v (retrying in %s)", p.name, err, backoff)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxRestart)
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
			backoff = minRestart
		}
		p.notice("%s exited (%s); restarting in %s", p.name, exitReason(err), backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, maxRestart)
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

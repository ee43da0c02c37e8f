package localmesh

import (
	"os"
	"sync"
	"time"

	"meshward.dev/meshward/internal/proxy/workloadapi"
)

// appTracker tells a service's sidecar which process is its app, over a
// pipe the sidecar reads (--workload-app-fd; see workloadapi.FollowApps):
// a "PID START" line when the app starts, "-" when it exits. Each sidecar
// run gets a new pipe and first hears the app's current state.
type appTracker struct {
	mu   sync.Mutex
	line string
	w    *os.File
}

func newAppTracker() *appTracker { return &appTracker{line: "-"} }

// started records the app's new process; a pid whose start time cannot be
// read is reported as no app (every caller is refused).
func (a *appTracker) started(pid int) error {
	app, err := workloadapi.AppOf(pid)
	if err != nil {
		a.set("-")
		return err
	}
	a.set(app.String())
	return nil
}

func (a *appTracker) exited() { a.set("-") }

func (a *appTracker) set(line string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.line = line
	a.send()
}

// attach makes w, the write end of a new sidecar's pipe, the one to tell.
func (a *appTracker) attach(w *os.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w != nil {
		_ = a.w.Close()
	}
	a.w = w
	a.send()
}

func (a *appTracker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w != nil {
		_ = a.w.Close()
		a.w = nil
	}
}

// send writes the current line; a sidecar that does not read (still
// bootstrapping with a full pipe, or gone) must not stall the supervisor.
func (a *appTracker) send() {
	if a.w == nil {
		return
	}
	_ = a.w.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = a.w.WriteString(a.line + "\n")
}

package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` keeps its namespaces.
const netnsDir = "/run/netns"

// InNetNS runs fn on an OS thread that has joined the named network
// namespace (the caller's own if name is empty). Sockets fn opens belong to
// that namespace for their whole life. The thread is never handed back to
// the Go scheduler: it ends with fn's goroutine, and its namespace (and
// anything else fn changed about it, such as its fsuid) with it.
func InNetNS(name string, fn func() error) error {
	if name != "" {
		if err := (Target{NetNS: name}).Check(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose: see above
		if name != "" {
			if err := setns(filepath.Join(netnsDir, name)); err != nil {
				errc <- err
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

func setns(path string) error {
	f, err := os.Open(path) // #nosec G304 -- a checked name under /run/netns
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join network namespace %s: %w", path, err)
	}
	return nil
}

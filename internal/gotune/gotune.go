// Package gotune keeps the Go runtime's system monitor awake in the
// sidecar process.
//
// The runtime's sysmon thread goes into a deep sleep whenever every P is
// idle, and the next goroutine that enters a system call wakes it again
// with a futex call, which puts a second thread on a CPU. A sidecar with
// one P is idle between almost every two requests, and every request makes
// system calls, so it pays this wake-up about twice per request: 3-5% of
// its CPU profile in runtime.entersyscallWakeSysmon alone, and the pair's
// CPU per request drops by 10-25% without it (docs/benchmarks.md, "sysmon").
//
// sysmon does not enter the deep sleep when GODEBUG schedtrace is set
// (the runtime keeps it polling so it can print traces on time; see
// runtime.sysmon). GODEBUG is read only at process start, so Reexec
// starts the binary again with schedtrace set to its largest value,
// 2147483647 ms (24.8 days): sysmon then backs off to a 10 ms poll when
// there is nothing to do. Side effects, both harmless: a one-line
// "SCHED ..." scheduler summary on standard error every 24.8 days of the
// machine's uptime (the first one at start on a machine up for longer),
// and a scheduler dump with the stack trace of a fatal crash.
//
// A GODEBUG that already sets schedtrace is left alone: GODEBUG=schedtrace=0
// turns this off.
package gotune

import (
	"os"
	"runtime"
	"strings"
	"syscall"
)

// Setting is the GODEBUG entry Reexec adds.
const Setting = "schedtrace=2147483647"

// Env returns env with Setting added to GODEBUG, or env unchanged when
// its GODEBUG sets schedtrace already.
func Env(env []string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			found = true
			if !setsSchedtrace(v) {
				if v != "" {
					v += ","
				}
				kv = "GODEBUG=" + v + Setting
			}
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+Setting)
	}
	return out
}

func setsSchedtrace(godebug string) bool {
	for f := range strings.SplitSeq(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(f), "schedtrace=") {
			return true
		}
	}
	return false
}

// Reexec replaces the process with the same binary and arguments and
// Env(os.Environ()) (same pid, so supervisors do not notice), unless
// GODEBUG sets schedtrace already or this is not Linux. It returns only
// when nothing was done or the exec failed; the caller then goes on
// untuned.
func Reexec() error {
	if runtime.GOOS != "linux" || setsSchedtrace(os.Getenv("GODEBUG")) {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, Env(os.Environ())) //nolint:gosec // our own binary, our own arguments
}

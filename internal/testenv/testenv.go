// Package testenv finds the outside tools tests run (curl, nginx, promtool,
// chromium). A missing tool skips the test on a developer's machine, with the
// package that provides it, but fails it under CI=true: CI must never pass by
// skipping. `make deps` installs them all.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of the command name, provided by the Debian package
// pkg. Commands in /usr/sbin are found even when PATH lacks it.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := dir + "/" + name; isExecutable(p) {
			return p
		}
	}
	msg := name + " not found: install the Debian package " + pkg + " (make deps installs everything the tests use)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

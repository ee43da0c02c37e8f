package localmesh

import "golang.org/x/sys/unix"

// protectSelf makes this process non-dumpable: its /proc files (environ,
// mem, fd) are then root's, so an app running as the same user cannot read
// the store key from its environment or the CA key from its memory. Only
// this process is affected; execve resets the flag for every child.
func protectSelf() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

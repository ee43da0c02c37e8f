package workloadapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerOf reads the peer's credentials (SO_PEERCRED) and opens its /proc
// directory. Where the kernel has SO_PEERPIDFD (Linux 6.5), a pidfd of the
// very process that connected proves the pid still names it after the
// open; otherwise, as SPIRE's peer tracker, the window is the time from
// connect to accept.
func peerOf(c net.Conn) (Caller, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Caller{}, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	pidfd := -1
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
				pidfd = pfd
			}
		}
	}); err != nil {
		return Caller{}, err
	}
	if credErr != nil {
		return Caller{}, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	caller := Caller{PID: int(cred.Pid), UID: cred.Uid, GID: cred.Gid}
	if caller.PID <= 0 {
		return caller, errors.New("the peer's pid is unknown (another pid namespace?)")
	}
	proc, err := os.Open("/proc/" + strconv.Itoa(caller.PID))
	if err != nil {
		return caller, fmt.Errorf("caller pid %d: %w", caller.PID, err)
	}
	if pidfd >= 0 {
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
			proc.Close()
			return caller, fmt.Errorf("caller pid %d exited before it was identified", caller.PID)
		}
	}
	caller.proc = proc
	return caller, nil
}

// stat reads the caller's /proc stat through the handle opened at accept
// (it fails once that process has exited, whoever has its pid now).
func (c Caller) stat() (stat, error) {
	if c.proc == nil {
		return readStat(c.PID)
	}
	fd, err := unix.Openat(int(c.proc.Fd()), "stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return stat{}, err
	}
	f := os.NewFile(uintptr(fd), "stat")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

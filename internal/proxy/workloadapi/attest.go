package workloadapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/observe"
)

// Caller is who is on the other end of a Workload API connection, as the
// kernel tells it (SO_PEERCRED: the credentials of the process that
// connected, which it cannot forge).
type Caller struct {
	PID int
	UID uint32
	GID uint32
	// proc is /proc/<PID>, opened while the caller was known to be alive
	// (SO_PEERPIDFD): reads through it fail once that process is gone,
	// even when its pid has been given to another. nil when not held.
	proc *os.File
}

// Attestor decides whether a caller may have the SVID this socket serves.
// As SPIRE's unix workload attestor does, it looks at the caller's kernel
// credentials, never at anything the caller sends.
type Attestor interface {
	Attest(Caller) error
}

// App names one run of the app's process: its pid and its start time
// (field 22 of /proc/<pid>/stat, clock ticks after boot). The start time
// tells this run from a later process that is given the same pid.
type App struct {
	PID   int
	Start uint64
}

// String is the line FollowApps reads: "PID START".
func (a App) String() string { return strconv.Itoa(a.PID) + " " + strconv.FormatUint(a.Start, 10) }

// AppOf reads pid's start time. The supervisor calls it right after
// starting the app and before waiting for it, so the pid cannot have been
// reused yet (an exited child stays a zombie until it is waited for).
func AppOf(pid int) (App, error) {
	st, err := readStat(pid)
	if err != nil {
		return App{}, err
	}
	return App{PID: pid, Start: st.start}, nil
}

// Policy is the attestor a sidecar uses. The caller must run as UID and,
// when an app is required (`meshward up` names it), be that app's process
// or one of its descendants: the parent chain in /proc leads from the
// caller to the app's pid with the app's start time. Another app running
// as the same user descends from the supervisor, not from this app, and
// cannot make itself a child of another process. A descendant whose
// parent exits is re-parented (to init) and loses access, which fails
// closed. The sidecar's own process is always served.
type Policy struct {
	UID        uint32
	requireApp bool
	app        atomic.Pointer[App]
}

// NewPolicy returns a policy for uid; requireApp makes it refuse every
// caller but the sidecar until SetApp names the app.
func NewPolicy(uid uint32, requireApp bool) *Policy {
	return &Policy{UID: uid, requireApp: requireApp}
}

// SetApp names the app's current run; nil means the app is not running
// (every caller but the sidecar is refused).
func (p *Policy) SetApp(a *App) { p.app.Store(a) }

// maxDepth bounds the walk up the parent chain.
const maxDepth = 256

// Attest implements Attestor.
func (p *Policy) Attest(c Caller) error {
	if c.PID == os.Getpid() {
		return nil
	}
	if c.UID != p.UID {
		return fmt.Errorf("caller pid %d runs as uid %d; this socket serves uid %d", c.PID, c.UID, p.UID)
	}
	if !p.requireApp {
		return nil
	}
	app := p.app.Load()
	if app == nil {
		return fmt.Errorf("caller pid %d: the app is not running", c.PID)
	}
	self, err := c.stat()
	if err != nil {
		return fmt.Errorf("caller pid %d is gone: %w", c.PID, err)
	}
	if err := descends(c.PID, self, *app); err != nil {
		return err
	}
	// As SPIRE does: the caller must still be the process that connected
	// once the decision is made.
	if _, err := c.stat(); err != nil {
		return fmt.Errorf("caller pid %d exited during attestation", c.PID)
	}
	return nil
}

// descends reports whether pid (whose stat is st) is app or a descendant
// of it. Each step up must lead to a process that started no later than
// its child: a parent pid that now belongs to a newer process (the real
// parent exited and the pid was reused) breaks the chain.
func descends(pid int, st stat, app App) error {
	for range maxDepth {
		if pid == app.PID && st.start == app.Start {
			return nil
		}
		parent := st.ppid
		if parent <= 1 {
			break
		}
		pst, err := readStat(parent)
		if err != nil || pst.start > st.start {
			break
		}
		pid, st = parent, pst
	}
	return errors.New("the caller is not the service's app or one of its descendants")
}

// stat is what attestation reads from /proc/<pid>/stat.
type stat struct {
	ppid  int
	start uint64
}

// parseStat reads the parent pid (field 4) and start time (field 22) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStat(line string) (stat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return stat{}, errors.New("malformed /proc stat")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("malformed /proc stat: ppid: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("malformed /proc stat: starttime: %w", err)
	}
	return stat{ppid: ppid, start: start}, nil
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(b))
}

// FollowApps reads the app's runs from r, one line each: "PID START" when
// the app (re)starts, "-" when it has exited. It applies each to p until r
// ends; then the app is taken as gone. A malformed line is logged, and
// the app taken as gone.
func FollowApps(r io.Reader, p *Policy, log *slog.Logger) {
	if log == nil {
		log = observe.Discard()
	}
	defer p.SetApp(nil)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if err := p.apply(sc.Text()); err != nil {
			log.Warn("bad app process line; refusing every caller until the next", observe.KeyError, err)
		}
	}
}

// apply applies one line of FollowApps.
func (p *Policy) apply(line string) error {
	line = strings.TrimSpace(line)
	if line == "-" {
		p.SetApp(nil)
		return nil
	}
	a, err := parseApp(line)
	if err != nil {
		p.SetApp(nil)
		return err
	}
	p.SetApp(&a)
	return nil
}

func parseApp(line string) (App, error) {
	ps, ss, ok := strings.Cut(line, " ")
	pid, err1 := strconv.Atoi(ps)
	start, err2 := strconv.ParseUint(ss, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 1 {
		return App{}, fmt.Errorf("%q is not \"PID START\"", line)
	}
	return App{PID: pid, Start: start}, nil
}

// peerCreds is gRPC transport credentials for a unix socket that records
// the peer at accept time; the connection stays plaintext (it never
// leaves the host). A peer it cannot identify is still accepted, and its
// calls refused with PermissionDenied (a failed handshake would show the
// client only an unavailable server).
type peerCreds struct{}

type callerInfo struct {
	credentials.CommonAuthInfo
	caller Caller
	err    error
}

func (callerInfo) AuthType() string { return "peercred" }

// peerConn releases the caller's /proc handle with the connection.
type peerConn struct {
	net.Conn
	proc *os.File
}

func (c *peerConn) Close() error {
	if c.proc != nil {
		_ = c.proc.Close()
	}
	return c.Conn.Close()
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info := callerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	info.caller, info.err = peerOf(c)
	return &peerConn{Conn: c, proc: info.caller.proc}, info, nil
}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peercred: server side only")
}
func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}
func (peerCreds) Clone() credentials.TransportCredentials { return peerCreds{} }
func (peerCreds) OverrideServerName(string) error         { return nil }

// attest checks the caller of an RPC. The check runs on every call, not
// once per connection, so a restarted app's new process applies at once.
func (s *Server) attest(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "caller unknown")
	}
	info, ok := p.AuthInfo.(callerInfo)
	if !ok {
		return status.Error(codes.PermissionDenied, "caller unknown")
	}
	if info.err != nil {
		s.log.Warn("workload api caller refused", observe.KeyError, info.err)
		return status.Errorf(codes.PermissionDenied, "caller credentials unavailable: %v", info.err)
	}
	if s.attestor == nil {
		return nil
	}
	if err := s.attestor.Attest(info.caller); err != nil {
		s.log.Warn("workload api caller refused", "pid", info.caller.PID, "uid", info.caller.UID, observe.KeyError, err)
		return status.Error(codes.PermissionDenied, "this socket does not serve the calling process: "+err.Error())
	}
	return nil
}

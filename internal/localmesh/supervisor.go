package localmesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
)

// Config configures a Supervisor.
type Config struct {
	Mesh *config.Mesh
	// Executable is the meshward binary: an app command whose first word
	// is "meshward" runs it.
	Executable string
	// Sidecar is the command that runs a sidecar, before its flags:
	// [meshward-proxy] (the lean binary) or [meshward proxy].
	Sidecar     []string
	ControlAddr string
	Admin       apiv1.ControlClient
	Out         *Output
	// SidecarArgs are extra flags for every sidecar (e.g. --log-format).
	SidecarArgs []string
	// OnReady is called once every app listens and every sidecar is ready
	// and knows an endpoint of each of its upstreams.
	OnReady func()
	// OnNotReady is called instead when some are not, once the wait is
	// over, with one line per service that is not ready and why.
	OnNotReady func(problems []string)
}

// Service is the runtime view of one service: where its sidecar listens.
type Service struct {
	Name      string
	Namespace string
	App       string // the app's plaintext loopback address
	Inbound   string // the sidecar's mTLS listener
	Admin     string // the sidecar's /metrics
	Socket    string // Workload API socket
	Expose    string // ingress from outside the mesh, if any
	Upstreams map[string]string
}

// Supervisor runs the sidecars and apps of a local mesh.
type Supervisor struct {
	cfg      Config
	services []*Service
	users    []*appUser    // per service; nil: the supervisor's user
	apps     []*appTracker // per service: tells its sidecar the app's process
	// runDir holds the Workload API sockets when apps run as their own
	// users (the data dir is then closed to them); "" otherwise.
	runDir string
}

// geteuid is the supervisor's effective uid (a variable for tests).
var geteuid = os.Geteuid

// New allocates every port the mesh needs, so they are fixed for the life
// of the supervisor: a restarted sidecar comes back where its app and its
// peers expect it.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Mesh == nil || cfg.Admin == nil || cfg.Out == nil || cfg.Executable == "" || len(cfg.Sidecar) == 0 {
		return nil, errors.New("localmesh: mesh, admin client, output, executable and sidecar command are required")
	}
	users, err := resolveUsers(cfg.Mesh, geteuid())
	if err != nil {
		return nil, err
	}
	s := &Supervisor{cfg: cfg, users: users}
	sockets := filepath.Join(cfg.Mesh.DataDirPath(), "sockets")
	if s.separateUsers() {
		// Apps of other users cannot enter the data dir: their sockets
		// live in a directory they may pass through, not list.
		if s.runDir, err = os.MkdirTemp("", "meshward-"+cfg.Mesh.Name+"-"); err != nil {
			return nil, err
		}
		if err := os.Chmod(s.runDir, 0o711); err != nil { //nolint:gosec // traverse only, see above
			return nil, err
		}
		sockets = s.runDir
	}
	var ports portReserver
	defer ports.release()
	for _, ms := range cfg.Mesh.Services {
		s.apps = append(s.apps, newAppTracker())
		svc := &Service{
			Name:      ms.Name,
			Namespace: ms.Namespace,
			App:       net.JoinHostPort("127.0.0.1", strconv.Itoa(ms.Port)),
			Inbound:   ms.Inbound,
			Expose:    ms.Expose,
			Socket:    filepath.Join(sockets, ms.Name+".sock"),
			Upstreams: map[string]string{},
		}
		if abs, err := filepath.Abs(svc.Socket); err == nil {
			svc.Socket = abs
		}
		var err error
		if svc.Inbound == "" {
			if svc.Inbound, err = ports.next(); err != nil {
				return nil, err
			}
		}
		if svc.Admin, err = ports.next(); err != nil {
			return nil, err
		}
		for _, u := range ms.Upstreams {
			svc.Upstreams[u.Service] = u.Listen
		}
		s.services = append(s.services, svc)
	}
	return s, nil
}

// separateUsers reports whether some app runs as a user of its own.
func (s *Supervisor) separateUsers() bool {
	for _, u := range s.users {
		if u != nil {
			return true
		}
	}
	return false
}

// Run starts every sidecar, then every app once its sidecar is ready, and
// keeps them running until ctx is cancelled; then it stops the apps first,
// then the sidecars.
func (s *Supervisor) Run(ctx context.Context) error {
	// Same-user apps must not read this process's environment (the
	// store key) or memory through /proc.
	if err := protectSelf(); err != nil {
		s.notice("cannot protect meshward's memory from apps (%v)", err)
	}
	if s.runDir != "" {
		defer os.RemoveAll(s.runDir)
	}
	defer func() {
		for _, a := range s.apps {
			a.close()
		}
	}()
	if s.separateUsers() {
		if err := lockDataDir(s.cfg.Mesh.DataDirPath()); err != nil {
			return fmt.Errorf("close the data dir to apps: %w", err)
		}
		for i, u := range s.users {
			if u == nil && len(s.cfg.Mesh.Services[i].Command) > 0 {
				s.notice("%s has no user: and runs as uid %d: it can read the data dir", s.services[i].Name, geteuid())
			}
		}
	}
	appCtx, stopApps := context.WithCancel(context.Background())
	sideCtx, stopSidecars := context.WithCancel(context.Background())
	defer stopApps()
	defer stopSidecars()
	var apps, sidecars sync.WaitGroup

	for i, svc := range s.services {
		ms := s.cfg.Mesh.Services[i]
		sc := &process{
			name:    svc.Name + "-proxy",
			prepare: func(ctx context.Context) (*exec.Cmd, error) { return s.sidecarCmd(ctx, i, svc, ms) },
			out:     s.cfg.Out.Writer(svc.Name + "-proxy"),
			notice:  s.notice,
			started: make(chan struct{}, 1),
		}
		sidecars.Add(1)
		go func() { defer sidecars.Done(); sc.run(sideCtx) }()
		if svc.Expose != "" {
			fw, err := listenForward(svc.Expose, svc.App)
			if err != nil {
				return fmt.Errorf("%s: expose: %w", svc.Name, err)
			}
			sidecars.Add(1)
			go func() { defer sidecars.Done(); fw.run(sideCtx) }()
		}
	}
	// Apps start once their sidecar is ready, so their first outbound
	// calls find the upstream listeners.
	appProcs := make([]*process, len(s.services))
	for i, svc := range s.services {
		ms := s.cfg.Mesh.Services[i]
		if len(ms.Command) == 0 {
			continue
		}
		if err := waitReady(ctx, svc.Admin); err != nil {
			s.notice("%s-proxy is not ready (%v); starting %s anyway", svc.Name, err, svc.Name)
		}
		tracker := s.apps[i]
		app := &process{
			name:    svc.Name,
			prepare: func(ctx context.Context) (*exec.Cmd, error) { return s.appCmd(ctx, svc, ms, s.users[i]) },
			out:     s.cfg.Out.Writer(svc.Name),
			notice:  s.notice,
			started: make(chan struct{}, 1),
			onStart: tracker.started,
			onExit:  tracker.exited,
			// An app that exits at start is given up on, its last output
			// shown, instead of restarting it forever.
			maxCrashes: appMaxCrashes,
			tail:       newTailBuffer(20),
		}
		appProcs[i] = app
		apps.Add(1)
		go func() { defer apps.Done(); app.run(appCtx) }()
	}
	var problems []string
	for i, svc := range s.services {
		if appProcs[i] != nil {
			if p := s.waitApp(ctx, svc, appProcs[i]); p != "" {
				problems = append(problems, p)
			}
		}
	}
	// "is up" promises that a call goes through: every sidecar holds its
	// policy and knows an endpoint of each upstream (the registry fills
	// as sidecars report, so a fast app could otherwise beat it).
	for _, svc := range s.services {
		if err := waitRoutable(ctx, svc); err != nil {
			problems = append(problems, fmt.Sprintf("%s-proxy cannot route every upstream (%v)", svc.Name, err))
		}
	}
	switch {
	case ctx.Err() != nil:
	case len(problems) == 0 && s.cfg.OnReady != nil:
		s.cfg.OnReady()
	case len(problems) > 0 && s.cfg.OnNotReady != nil:
		s.cfg.OnNotReady(problems)
	}
	<-ctx.Done()
	s.notice("stopping apps")
	stopApps()
	apps.Wait()
	s.notice("stopping sidecars")
	stopSidecars()
	sidecars.Wait()
	return nil
}

func (s *Supervisor) notice(format string, args ...any) {
	s.cfg.Out.Printf("meshward | "+format+"\n", args...)
}

func (s *Supervisor) sidecarCmd(ctx context.Context, i int, svc *Service, ms config.Service) (*exec.Cmd, error) {
	// A fresh single-use token for every start: a restarted sidecar has
	// lost its in-memory key and must bootstrap again.
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := s.cfg.Admin.CreateToken(tctx, &apiv1.CreateTokenRequest{Service: ms.Account(), Namespace: svc.Namespace, TtlSeconds: 300})
	if err != nil {
		return nil, fmt.Errorf("mint join token: %w", err)
	}
	args := []string{
		"--service", svc.Name, "--namespace", svc.Namespace,
		"--control", s.cfg.ControlAddr, "--trust-domain", s.cfg.Mesh.TrustDomain,
		"--inbound", svc.Inbound, "--app", svc.App, "--protocol", ms.Protocol,
		"--admin", svc.Admin, "--workload-api", svc.Socket,
	}
	for _, u := range ms.AllowUpgrades {
		args = append(args, "--allow-upgrade", u)
	}
	names := make([]string, 0, len(svc.Upstreams))
	for n := range svc.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		proto := "http"
		if up, ok := s.cfg.Mesh.Service(n); ok {
			proto = up.Protocol
		}
		args = append(args, "--upstream", n+"="+svc.Upstreams[n]+"/"+proto)
	}
	if u := s.users[i]; u != nil {
		args = append(args, "--workload-uid", strconv.FormatUint(uint64(u.cred.Uid), 10))
	}
	var extra []*os.File
	if len(ms.Command) > 0 {
		// The sidecar serves the SVID only to the app this supervisor
		// starts (and its descendants); it learns which process that is
		// on fd 3. (An app started by hand is attested by uid alone.)
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.apps[i].attach(w)
		extra = []*os.File{r}
		args = append(args, "--workload-app-fd", "3")
	}
	args = append(args, s.cfg.SidecarArgs...)
	args = append(append([]string(nil), s.cfg.Sidecar[1:]...), args...)
	cmd := exec.CommandContext(ctx, s.cfg.Sidecar[0], args...)
	cmd.Env = sidecarEnv(environ(), tok.Token)
	cmd.ExtraFiles = extra
	return cmd, nil
}

// appCmd builds the app's command, as its own user when it has one. Its
// environment is scrubbed: the ordinary variables of meshward's own
// (ordinaryEnv), the MESHWARD_* variables that tell it its ports (see
// docs/configuration.md), and its service's env:.
func (s *Supervisor) appCmd(ctx context.Context, svc *Service, ms config.Service, u *appUser) (*exec.Cmd, error) {
	argv := append([]string(nil), ms.Command...)
	if argv[0] == "meshward" {
		argv[0] = s.cfg.Executable
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // the user's mesh.yaml names the command
	if s.cfg.Mesh.File != "" {
		cmd.Dir = filepath.Dir(s.cfg.Mesh.File)
	}
	env := scrubbedEnv(environ())
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		env = setEnv(env, "HOME", u.home)
		env = setEnv(env, "USER", u.name)
		env = setEnv(env, "LOGNAME", u.name)
	}
	env = append(env,
		"MESHWARD_SERVICE="+svc.Name,
		"MESHWARD_NAMESPACE="+svc.Namespace,
		"MESHWARD_TRUST_DOMAIN="+s.cfg.Mesh.TrustDomain,
		"MESHWARD_PORT="+strconv.Itoa(ms.Port),
		"MESHWARD_LISTEN="+svc.App,
		"SPIFFE_ENDPOINT_SOCKET=unix://"+svc.Socket,
	)
	for name, addr := range svc.Upstreams {
		env = append(env, "MESHWARD_UPSTREAM_"+EnvName(name)+"="+addr)
	}
	for k, v := range ms.Env {
		env = setEnv(env, k, v)
	}
	cmd.Env = env
	return cmd, nil
}

// EnvName turns a service name into the suffix of its MESHWARD_UPSTREAM_
// variable: upper case, dashes as underscores.
func EnvName(service string) string {
	return strings.ReplaceAll(strings.ToUpper(service), "-", "_")
}

// waitReady polls the sidecar's /readyz (it holds a valid SVID), bounded.
func waitReady(ctx context.Context, admin string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/readyz", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// waitRoutable waits, bounded, until the sidecar is ready and lists at
// least one endpoint for each of its upstreams on /endpoints.
func waitRoutable(ctx context.Context, svc *Service) error {
	if err := waitReady(ctx, svc.Admin); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	// known is the missing list of the last poll that got an answer: the
	// poll cut short by the deadline fails with the timeout, and the caller
	// needs to hear which upstream never appeared, not that.
	var known []string
	for {
		missing, err := missingEndpoints(ctx, c, svc)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if err == nil {
			known = missing
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			if known != nil {
				return fmt.Errorf("no endpoint for %s", strings.Join(known, ", "))
			}
			return err
		}
	}
}

// missingEndpoints returns the upstreams of svc its sidecar knows no
// endpoint for.
func missingEndpoints(ctx context.Context, c *http.Client, svc *Service) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svc.Admin+"/endpoints", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/endpoints: %s", resp.Status)
	}
	var known map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&known); err != nil {
		return nil, fmt.Errorf("/endpoints: %w", err)
	}
	var missing []string
	for name := range svc.Upstreams {
		if len(known[name]) == 0 {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return missing, nil
}

// How long up waits for an app to listen, and how often it says so; how
// many quick exits in a row make it give an app up.
const (
	appStartup    = 60 * time.Second
	appProgress   = 5 * time.Second
	appMaxCrashes = 5
)

// waitApp waits until the app listens on its port, saying every few
// seconds that it is still waiting, and returns "" or why it is not ready:
// it was given up on (with its exit), or it still does not listen after
// appStartup.
func (s *Supervisor) waitApp(ctx context.Context, svc *Service, app *process) string {
	start := time.Now()
	next := start.Add(appProgress)
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", svc.App)
		cancel()
		if err == nil {
			c.Close()
			return ""
		}
		exits, last, gaveUp := app.status.get()
		switch {
		case ctx.Err() != nil:
			return ""
		case gaveUp:
			return fmt.Sprintf("%s is not running: it exited (%s) %d times in a row and was given up on; its output is above", svc.Name, last, exits)
		case time.Since(start) >= appStartup:
			why := ""
			if exits > 0 {
				why = fmt.Sprintf("; it exited %d times, last with %s", exits, last)
			}
			return fmt.Sprintf("%s is still not listening on %s after %s%s", svc.Name, svc.App, appStartup.Round(time.Second), why)
		case time.Now().After(next):
			s.notice("waiting for %s to listen on %s (%s of %s)", svc.Name, svc.App, time.Since(start).Round(time.Second), appStartup)
			next = next.Add(appProgress)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ""
		}
	}
}

// portReserver hands out loopback addresses with ports that are free, and
// distinct until release: a port closed at once can come back from the
// very next bind, and two sidecars were once given the same admin port.
type portReserver struct{ held []net.Listener }

func (r *portReserver) next() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	r.held = append(r.held, ln)
	return ln.Addr().String(), nil
}

// release frees every port for the sidecars to bind.
func (r *portReserver) release() {
	for _, ln := range r.held {
		_ = ln.Close()
	}
	r.held = nil
}

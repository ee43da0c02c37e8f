//go:build e2e

// Package e2e runs the real meshward binary: `meshward up --demo`, the
// control plane and sidecars as processes, real clients (curl and Go) on
// real loopback sockets. Every wait is bounded.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var bin string // the meshward binary under test

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshward-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bin = filepath.Join(dir, "meshward")
	// Both binaries, as `make build` lays them out: up runs sidecars with
	// the lean meshward-proxy next to meshward.
	for out, pkg := range map[string]string{bin: "../../cmd/meshward", filepath.Join(dir, "meshward-proxy"): "../../cmd/meshward-proxy"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output for assertions.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a meshward process started by a test.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// start runs meshward with args in the background; it is stopped (SIGTERM,
// then SIGKILL) at the end of the test.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Errorf("%v did not stop within 20s of SIGTERM; killing", p.cmd.Args)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// kill9 kills the process (not its group) with SIGKILL.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = p.cmd.Process.Wait()
	p.cmd.ProcessState = &os.ProcessState{}
}

// waitOutput waits, bounded, until the output contains s.
func (p *proc) waitOutput(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), s) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %q in output within %s; output:\n%s", s, d, tail(p.out.String(), 60))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// meshward runs a short command and returns stdout, stderr and exit code.
func meshward(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("meshward %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustMeshward is meshward that fails the test on a non-zero exit.
func mustMeshward(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := meshward(t, args...)
	if code != 0 {
		t.Fatalf("meshward %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// curl runs the real curl and returns the HTTP status and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	all := append([]string{"-s", "-m", "10", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command("curl", all...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Sprintf("curl exit %d", ee.ExitCode())
		}
		t.Fatalf("curl: %v", err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscanf(s[i+1:], "%d", &code)
	return code, s[:i]
}

// load sends GETs to url at about rps for d (bounded: at most rps*d
// requests, 32 in flight) and returns how many were sent and how many
// failed (transport error or a status other than 200).
func load(url string, rps int, d time.Duration) (sent, failed int64, firstErr error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var wg sync.WaitGroup
	var errOnce sync.Once
	sem := make(chan struct{}, 32)
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	end := time.Now().Add(d)
	var s, f atomic.Int64
	for max := int64(rps) * int64(d/time.Second); time.Now().Before(end) && s.Load() < max; {
		<-tick.C
		sem <- struct{}{}
		s.Add(1)
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			resp, err := client.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				f.Add(1)
				errOnce.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	return s.Load(), f.Load(), firstErr
}

package localmesh

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestProtectHelper is the processes of TestProtectSelfHidesEnviron (the
// test binary run again as nobody).
func TestProtectHelper(t *testing.T) {
	switch os.Getenv("LOCALMESH_HELPER") {
	case "":
		return
	case "protect", "plain":
		if os.Getenv("LOCALMESH_HELPER") == "protect" {
			if err := protectSelf(); err != nil {
				fmt.Println("protect:", err)
			}
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test is done
	case "read":
		b, err := os.ReadFile("/proc/" + os.Getenv("LOCALMESH_PID") + "/environ")
		switch {
		case err != nil:
			fmt.Println("err", err)
		case strings.Contains(string(b), "LOCALMESH_SECRET=store-key"):
			fmt.Println("read the secret")
		default:
			fmt.Println("read no secret")
		}
	}
	os.Exit(0)
}

// The attack: an app of up's own user reads the store key from up's
// /proc/<pid>/environ. Once up is non-dumpable it cannot; without that it
// can. (Both processes run as nobody: root could read it anyway.)
func TestProtectSelfHidesEnviron(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run both processes as nobody")
	}
	dir, err := os.MkdirTemp("", "localmesh-protect-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "localmesh.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil { //nolint:gosec // a test binary others must run
		t.Fatal(err)
	}
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	run := func(mode string) string {
		target := exec.Command(exe, "-test.run=^TestProtectHelper$")
		target.Dir = dir
		target.Env = []string{"LOCALMESH_HELPER=" + mode, "LOCALMESH_SECRET=store-key"}
		target.SysProcAttr = nobody
		in, _ := target.StdinPipe()
		out, _ := target.StdoutPipe()
		if err := target.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { in.Close(); _ = target.Wait() }()
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			t.Fatalf("%s helper: %q", mode, line)
		}
		reader := exec.Command(exe, "-test.run=^TestProtectHelper$")
		reader.Dir = dir
		reader.Env = []string{"LOCALMESH_HELPER=read", fmt.Sprintf("LOCALMESH_PID=%d", target.Process.Pid)}
		reader.SysProcAttr = nobody
		b, err := reader.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := run("plain"); got != "read the secret" {
		t.Fatalf("a same-user process reading an unprotected environ: %q; want it read (the premise)", got)
	}
	if got := run("protect"); !strings.HasPrefix(got, "err ") || !strings.Contains(got, "permission denied") {
		t.Fatalf("a same-user process reading a protected environ: %q; want permission denied", got)
	}
}

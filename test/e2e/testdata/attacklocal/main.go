// Command attacklocal is the app of test/e2e/attack_local_test.go: a
// workload under `meshward up` that tries to take what is not its own. It
// serves on MESHWARD_LISTEN:
//
//	/env                  its environment, one variable a line
//	/whoami               its uid
//	/fetch?socket=S       an SVID from the Workload API at S (go-spiffe)
//	/spawn-fetch?socket=S the same from a child process it starts
//	/read?path=P          read file P, or list directory P
//
// Run as "attacklocal fetch S" it fetches once and prints the result.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"
)

func fetch(sock string) string {
	if sock == "" {
		sock = strings.TrimPrefix(os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "unix://")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
	if err != nil {
		return fmt.Sprintf("refused %s: %s", status.Code(err), status.Convert(err).Message())
	}
	return "ok " + svid.ID.String()
}

func read(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "err " + err.Error()
	}
	if fi.IsDir() {
		names, err := os.ReadDir(path)
		if err != nil {
			return "err " + err.Error()
		}
		return fmt.Sprintf("ok %d entries", len(names))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "err " + err.Error()
	}
	return fmt.Sprintf("ok %d bytes", len(b))
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "fetch" {
		fmt.Println(fetch(os.Args[2]))
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, strings.Join(os.Environ(), "\n"))
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, os.Getuid()) })
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, fetch(r.URL.Query().Get("socket")))
	})
	mux.HandleFunc("/spawn-fetch", func(w http.ResponseWriter, r *http.Request) {
		sock := r.URL.Query().Get("socket")
		if sock == "" {
			sock = strings.TrimPrefix(os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "unix://")
		}
		exe, _ := os.Executable()
		out, err := exec.Command(exe, "fetch", sock).CombinedOutput()
		if err != nil {
			fmt.Fprintln(w, "child:", err)
		}
		w.Write(out)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, read(r.URL.Query().Get("path")))
	})
	srv := &http.Server{Addr: os.Getenv("MESHWARD_LISTEN"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

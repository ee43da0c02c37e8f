package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDashboardCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(w, "ok")
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	// A closed port: nothing answers there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	meshFile := filepath.Join(dir, "mesh.yaml")
	mesh := "apiVersion: meshward.dev/v1\nkind: Mesh\nmetadata: {name: shop}\nspec:\n  trustDomain: shop.local\n  dashboard: {listen: \"0.0.0.0:" + port + "\"}\n  services:\n    - {name: a, command: [a], port: 8081}\n"
	if err := os.WriteFile(meshFile, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		o        dashboardOptions
		display  bool
		openErr  error
		wantOut  string
		wantErr  string
		wantCode int
		wantOpen bool
	}{
		{name: "addr, a display: opened", o: dashboardOptions{addr: addr}, display: true, wantOut: "http://" + addr + "/\n", wantOpen: true},
		{name: "no display: printed only", o: dashboardOptions{addr: addr}, wantOut: "http://" + addr + "/\n"},
		{name: "no-open", o: dashboardOptions{addr: addr, noOpen: true}, display: true, wantOut: "http://" + addr + "/\n"},
		{name: "browser fails: URL still printed", o: dashboardOptions{addr: addr}, display: true, openErr: errors.New("no xdg-open"), wantOut: "http://" + addr + "/\n", wantOpen: true},
		{name: "json", o: dashboardOptions{addr: addr, output: "json"}, display: true, wantOut: "{\n  \"url\": \"http://" + addr + "/\",\n  \"opened\": true\n}\n", wantOpen: true},
		{name: "mesh file, wildcard listen", o: dashboardOptions{file: meshFile}, wantOut: "http://127.0.0.1:" + port + "/\n"},
		{name: "nothing answers", o: dashboardOptions{addr: closed}, display: true, wantErr: "no dashboard answers at http://" + closed + "/", wantCode: exitFindings},
		{name: "bad addr", o: dashboardOptions{addr: "9900"}, wantErr: "want host:port", wantCode: exitUsage},
		{name: "addr and file", o: dashboardOptions{addr: addr, file: meshFile}, wantErr: "give one", wantCode: exitUsage},
		{name: "yaml", o: dashboardOptions{addr: addr, output: "yaml", noOpen: true}, wantOut: "opened: false\nurl: http://" + addr + "/\n"},
		{name: "bad -o", o: dashboardOptions{addr: addr, output: "xml"}, wantErr: "-o must be one of", wantCode: exitUsage},
		{name: "missing mesh file", o: dashboardOptions{file: filepath.Join(dir, "nope.yaml")}, wantErr: "nope.yaml", wantCode: exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.output == "" {
				o.output = "text"
			}
			opened := ""
			o.open = func(url string) error { opened = url; return tc.openErr }
			o.getenv = func(k string) string {
				if k == "DISPLAY" && tc.display {
					return ":0"
				}
				return ""
			}
			o.client = &http.Client{Timeout: 2 * time.Second}
			var out, errb bytes.Buffer
			err := o.validate()
			if err == nil {
				err = runDashboard(t.Context(), &o, &out, &errb)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if got := ExitCode(err); got != tc.wantCode {
					t.Fatalf("exit code %d, want %d", got, tc.wantCode)
				}
				if opened != "" {
					t.Fatal("a browser was opened on an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.wantOut {
				t.Errorf("stdout = %q, want %q", out.String(), tc.wantOut)
			}
			if tc.wantOpen != (opened != "") {
				t.Errorf("opened %q, want opened=%v", opened, tc.wantOpen)
			}
			if tc.openErr != nil && !strings.Contains(errb.String(), "could not open a browser") {
				t.Errorf("stderr = %q", errb.String())
			}
		})
	}
}

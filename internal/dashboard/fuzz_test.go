package dashboard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshward.dev/meshward/internal/store"
)

// FuzzParseDeny: an old audit event (text only, no Deny fields) carries a
// path a caller chose in its detail; parsing never panics and what it
// extracts is a part of the detail.
func FuzzParseDeny(f *testing.F) {
	for _, s := range []string{
		"GET /charge port 8084 rule=default-deny policy=payments mode=enforce version=sha256:aa",
		"POST /refunds/1 port 8084 rule=frontend-refunds policy=payments mode=audit version=sha256:bb commit=4e94245",
		"connection port 5432 rule=default-deny policy= mode=enforce version=v",
		"3 more denies not itemized (rate bound)",
		"GET / port 99999999999999999999 rule=",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, detail string) {
		d := denyOf(store.AuditEvent{Time: time.Unix(0, 0), Action: "request.deny", Detail: detail})
		if d.Detail != detail {
			t.Fatalf("detail changed: %q -> %q", detail, d.Detail)
		}
		for _, part := range []string{d.Method, d.Path, d.Rule, d.Policy, d.Mode, d.Version, d.Commit} {
			if !strings.Contains(detail, part) {
				t.Fatalf("%q is not part of %q", part, detail)
			}
		}
		if d.Port < 0 {
			t.Fatalf("negative port %d", d.Port)
		}
	})
}

// FuzzParseTraffic: a sidecar's /metrics is parsed without panics, and a
// parse that succeeds yields only finite, non-negative counters or an
// error.
func FuzzParseTraffic(f *testing.F) {
	files, err := filepath.Glob("testdata/metrics/*.txt")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(metricsText("requests frontend catalog http 200 allow 3", "tcp frontend catalog deny 4"))
	f.Add("# TYPE meshward_requests_total counter\nmeshward_requests_total{source=\"a\"} NaN\n")
	f.Add("# TYPE meshward_requests_total untyped\nmeshward_requests_total 1e308\n")
	f.Add("garbage{{{")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		got, err := parseTraffic(strings.NewReader(body))
		if err != nil {
			return
		}
		for k := range got {
			if k.kind != "http" && k.kind != "tcp" {
				t.Fatalf("series of kind %q", k.kind)
			}
		}
	})
}

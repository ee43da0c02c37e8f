package dashboard

import (
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

package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/store"
)

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	// A second opener (another control plane on the same data dir) is
	// refused with a clear error instead of waiting forever.
	if _, err := Open(dir, nil); err == nil {
		t.Fatal("a second store opened the same file")
	}
}

func TestPruneAudit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Hour), Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneAudit(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	left, _ := s.Audit(ctx, time.Time{})
	if len(left) != 3 || !left[0].Time.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("left %v", left)
	}
}

func TestSealedCA(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sealer, _ := store.NewSealer(make([]byte, 32))
	s, err := Open(dir, sealer)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"key":"ca private key material"}`)
	if err := s.SaveCA(ctx, secret); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadCA(ctx)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("load = %q, %v", got, err)
	}
	s.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	if bytes.Contains(raw, []byte("ca private key material")) {
		t.Fatal("the CA blob is on disk in clear text")
	}
	other, _ := store.NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	s2, err := Open(dir, other)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.LoadCA(ctx); err == nil {
		t.Fatal("loaded the CA with the wrong key")
	}
	if _, err := s2.LoadCA(ctx); errors.Is(err, store.ErrNotFound) {
		t.Fatal("wrong key reported as no CA (would create a new one)")
	}
}

// TestAuditPage pages through a trail (with events before since mixed in)
// with every page size: the pages together are exactly Audit's answer.
func TestAuditPage(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 23 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			at = t0.Add(-time.Hour) // before since
		}
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: at, Action: "x", Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.Audit(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 5, 15, 16, 100} {
		var got []store.AuditEvent
		var after uint64
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatalf("limit %d: no end after 30 pages", limit)
			}
			page, next, err := s.AuditPage(ctx, t0, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if next == 0 {
				break
			}
			after = next
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit %d: pages differ from Audit (-want +got):\n%s", limit, diff)
		}
	}
	if _, _, err := s.AuditPage(ctx, t0, 0, 0); err == nil {
		t.Error("limit 0 accepted")
	}
}

package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

// TestOpen: store.Open picks the implementation from the URL; a plain
// path is a bolt file; anything else is a clear error that lists what is
// supported and never repeats a password.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		url  string
		file string // the bolt file it must create
	}{
		{"bolt URL", "bolt://" + filepath.Join(dir, "a", "meshward.db"), filepath.Join(dir, "a", "meshward.db")},
		{"upper-case scheme", "BOLT://" + filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db")},
		{"plain path", filepath.Join(dir, "c", "d", "store.db"), filepath.Join(dir, "c", "d", "store.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(ctx, tc.url, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, ok := s.(*bolt.Store); !ok {
				t.Fatalf("opened a %T, want a *bolt.Store", s)
			}
			fi, err := os.Stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %o, want 600", fi.Mode().Perm())
			}
		})
	}

	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"unknown scheme", "mysql://db/meshward", []string{`unknown scheme "mysql"`, "supported: bolt://", "plain file path"}},
		{"password not repeated", "postgres://meshward:s3cret@db:5432/meshward", []string{`unknown scheme "postgres"`, "bolt://"}},
		{"bolt with a host", "bolt://relative/meshward.db", []string{"bolt:///absolute/path"}},
		{"bolt with a query", "bolt://" + filepath.Join(dir, "q.db") + "?mode=x", []string{"no query"}},
		{"bolt without a path", "bolt://", []string{"path is empty"}},
		{"empty", "", []string{"store location is empty", "bolt://"}},
		{"bad URL", "bolt://u:s3cret@[::1", []string{"not a URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(ctx, tc.url, store.Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !errors.Is(err, store.ErrLocation) {
				t.Errorf("error %q does not wrap ErrLocation", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

// TestOpenFailureIsNotALocationError: a store that cannot be opened (here
// a directory where the file should be) is not reported as a bad location.
func TestOpenFailureIsNotALocationError(t *testing.T) {
	s, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a directory as a bolt file")
	}
	if errors.Is(err, store.ErrLocation) {
		t.Errorf("error %q wraps ErrLocation", err)
	}
}

func TestSchemes(t *testing.T) {
	if got := store.Schemes(); len(got) != 1 || got[0] != "bolt" {
		t.Errorf("Schemes() = %v, want [bolt]", got)
	}
}

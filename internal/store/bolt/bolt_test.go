package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

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

func TestSealedCA(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sealer, _ := store.NewSealer(make([]byte, 32))
	s, err := Open(dir, sealer)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"key":"ca private key material"}`)
	if _, err := s.SaveCA(ctx, secret, 0); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.LoadCA(ctx)
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
	if _, _, err := s2.LoadCA(ctx); err == nil {
		t.Fatal("loaded the CA with the wrong key")
	}
	if _, _, err := s2.LoadCA(ctx); errors.Is(err, store.ErrNotFound) {
		t.Fatal("wrong key reported as no CA (would create a new one)")
	}
}

// TestCAStateFormat: the CA blob stays where older versions kept it (key
// "state" in bucket "ca"), and a file they wrote (no revision in it) opens
// with its CA at revision 1, which a compare-and-swap then moves on.
func TestCAStateFormat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)

	// A data dir as an older version left it.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("ca"))
		if err != nil {
			return err
		}
		return b.Put([]byte("state"), []byte("legacy"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	blob, rev, err := s.LoadCA(ctx)
	if err != nil || string(blob) != "legacy" || rev != 1 {
		t.Fatalf("LoadCA = %q, %d, %v; want legacy, 1", blob, rev, err)
	}
	if _, err := s.SaveCA(ctx, []byte("new"), 0); !errors.Is(err, store.ErrCAConflict) {
		t.Fatalf("create over a legacy CA: %v, want ErrCAConflict", err)
	}
	rev, err = s.SaveCA(ctx, []byte("new"), 1)
	if err != nil || rev != 2 {
		t.Fatalf("SaveCA over revision 1 = %d, %v; want 2", rev, err)
	}
	s.Close()

	db, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("ca")).Get([]byte("state")); string(v) != "new" {
			t.Errorf("ca/state = %q, want the blob as saved", v)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if blob, rev, err := s.LoadCA(ctx); err != nil || string(blob) != "new" || rev != 2 {
		t.Fatalf("after reopening: LoadCA = %q, %d, %v; want new, 2", blob, rev, err)
	}
}

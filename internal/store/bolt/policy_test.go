package bolt

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bbolt "go.etcd.io/bbolt"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store"
)

// oldPolicyJSON is a policy version as the bolt store wrote it before
// store.PolicyVersion held policy.File: each file is {"name", "content"}.
const oldPolicyJSON = `{"revision":1,"version":"v1","applied_at":"2026-01-02T03:04:05Z","applied_by":"spiffe://example.org/meshward/admin","git_commit":"abc123","message":"why","files":[{"name":"b.yaml","content":"Yg=="},{"name":"a.yaml","content":"YQ=="}]}`

var oldPolicyVersion = store.PolicyVersion{
	Revision: 1, Version: "v1", AppliedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	AppliedBy: "spiffe://example.org/meshward/admin", GitCommit: "abc123", Message: "why",
	Files: []policy.File{{Name: "b.yaml", Data: []byte("b")}, {Name: "a.yaml", Data: []byte("a")}},
}

// TestPolicyVersionStoredByOldCode: a data dir whose policy version was
// written by the old code (the JSON bytes put directly) still reads, and
// saving that version again writes the same bytes.
func TestPolicyVersionStoredByOldCode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPolicies)
		if err := b.SetSequence(1); err != nil { // as the old SavePolicy left it
			return err
		}
		return b.Put(seqKey(1), []byte(oldPolicyJSON))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.PolicyVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.PolicyVersion{oldPolicyVersion}, got); diff != "" {
		t.Errorf("PolicyVersions (-want +got):\n%s", diff)
	}

	saved, err := s.SavePolicy(ctx, oldPolicyVersion)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.db.View(func(tx *bbolt.Tx) error {
		raw = append(raw, tx.Bucket(bucketPolicies).Get(seqKey(uint64(saved.Revision)))...) //nolint:gosec // a small test revision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The new revision is 2; otherwise the bytes are the old format's.
	want := `{"revision":2` + oldPolicyJSON[len(`{"revision":1`):]
	if string(raw) != want {
		t.Errorf("stored JSON:\n got %s\nwant %s", raw, want)
	}
}

// Package bolt is the default control plane store: one bbolt file, by
// default in the data dir (mode 0600, directory 0700); store.Open opens it
// for bolt:///path and plain paths. Each Store method is one bbolt
// transaction, so a crash (even kill -9) leaves the file consistent.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store"
)

var (
	bucketCA       = []byte("ca")
	bucketTokens   = []byte("tokens")
	bucketCerts    = []byte("certs")
	bucketAudit    = []byte("audit")
	bucketBans     = []byte("bans")
	bucketPolicies = []byte("policies")
	keyCAState     = []byte("state")
)

// FileName is the store's file inside the data dir.
const FileName = "meshward.db"

// Store is a store.Store in a bbolt file.
type Store struct {
	db     *bbolt.DB
	sealer *store.Sealer
}

var _ store.Store = (*Store)(nil)

func init() { store.Register("bolt", openURL) }

// openURL opens bolt:///path/to/file (or a plain path) for store.Open.
func openURL(_ context.Context, u *url.URL, opts store.Options) (store.Store, error) {
	if u.Host != "" || u.Opaque != "" || u.User != nil {
		return nil, fmt.Errorf("%w %s: a bolt URL names a local file: bolt:///absolute/path/%s, or give a plain path", store.ErrLocation, u.Redacted(), FileName)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w %s: a bolt URL takes no query or fragment", store.ErrLocation, u.Redacted())
	}
	if u.Path == "" {
		return nil, fmt.Errorf("%w: the bolt file path is empty", store.ErrLocation)
	}
	return OpenFile(u.Path, opts.Sealer)
}

// Open opens (creating if needed) the store in dataDir, which it makes
// private (0700). A non-nil sealer encrypts the CA blob at rest.
func Open(dataDir string, sealer *store.Sealer) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil { //nolint:gosec // a directory needs x to be entered
		return nil, fmt.Errorf("open store: %w", err)
	}
	return OpenFile(filepath.Join(dataDir, FileName), sealer)
}

// OpenFile opens (creating if needed, mode 0600) the store in the file at
// path. Missing parent directories are created 0700; an existing one is
// left as it is (Open is the one that makes the data dir private).
func OpenFile(path string, sealer *store.Sealer) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another meshward control plane holds it", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketCA, bucketTokens, bucketCerts, bucketAudit, bucketBans, bucketPolicies} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Batch waits this long for company before it commits: short, because
	// a lone renewal should not wait for others.
	db.MaxBatchDelay = time.Millisecond
	return &Store{db: db, sealer: sealer}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// caRevision is the revision of the stored CA state. It is kept in the ca
// bucket's sequence, so the file format is the one older versions wrote:
// a state they saved (sequence 0) counts as revision 1.
func caRevision(b *bbolt.Bucket) int64 {
	if seq := b.Sequence(); seq > 0 {
		return int64(seq) //nolint:gosec // bounded: counts CA saves, never near 2^63
	}
	if b.Get(keyCAState) != nil {
		return 1
	}
	return 0
}

// LoadCA implements store.Store.
func (s *Store) LoadCA(_ context.Context) ([]byte, int64, error) {
	var (
		blob []byte
		rev  int64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCA)
		v := b.Get(keyCAState)
		if v == nil {
			return store.ErrNotFound
		}
		blob, rev = bytes.Clone(v), caRevision(b)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	plain, err := s.sealer.Open(blob)
	if err != nil {
		return nil, 0, err
	}
	return plain, rev, nil
}

// SaveCA implements store.Store: the revision check and the write are one
// bbolt transaction, which bbolt runs one at a time.
func (s *Store) SaveCA(_ context.Context, blob []byte, prev int64) (int64, error) {
	sealed, err := s.sealer.Seal(blob)
	if err != nil {
		return 0, fmt.Errorf("seal ca: %w", err)
	}
	var rev int64
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCA)
		if cur := caRevision(b); cur != prev {
			return fmt.Errorf("%w (stored revision %d, expected %d)", store.ErrCAConflict, cur, prev)
		}
		rev = prev + 1
		if err := b.SetSequence(uint64(rev)); err != nil { //nolint:gosec // rev > 0
			return err
		}
		return b.Put(keyCAState, sealed)
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(_ context.Context, t store.Token) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get(t.Hash) != nil {
			return errors.New("token hash collision")
		}
		return putJSON(b, t.Hash, t)
	})
}

// ConsumeToken implements store.Store.
// Concurrent redemptions share one transaction and one fsync (bbolt's
// Batch); each returns only after that commit, so a redemption is durable
// before its caller signs anything. A refused token (unknown, used,
// expired, or refused by check) writes nothing and is an outcome, not a
// transaction error, so it never rolls back the others' batch. Batch may
// run the function again alone; it starts from scratch each time.
func (s *Store) ConsumeToken(_ context.Context, hash []byte, now time.Time, check func(store.Token) error) (store.Token, error) {
	var (
		t       store.Token
		refused error
	)
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		t, refused = store.Token{}, nil
		b := tx.Bucket(bucketTokens)
		v := b.Get(hash)
		if v == nil {
			refused = store.ErrTokenUnknown
			return nil
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode token: %w", err)
		}
		if !t.UsedAt.IsZero() {
			refused = store.ErrTokenUsed
			return nil
		}
		if !now.Before(t.ExpiresAt) {
			refused = store.ErrTokenExpired
			return nil
		}
		if check != nil {
			if err := check(t); err != nil {
				refused = err
				return nil
			}
		}
		t.UsedAt = now
		return putJSON(b, hash, t)
	})
	if err != nil {
		return t, err
	}
	return t, refused
}

// RecordCert implements store.Store.
// Concurrent calls share one transaction and one fsync (bbolt's Batch): the
// fsync, not the signature, bounds issuance throughput.
func (s *Store) RecordCert(_ context.Context, c store.IssuedCert) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCerts)
		if b.Get([]byte(c.Serial)) != nil {
			return fmt.Errorf("%w: %s", store.ErrSerialExists, c.Serial)
		}
		return putJSON(b, []byte(c.Serial), c)
	})
}

// IssuedCerts implements store.Store.
func (s *Store) IssuedCerts(_ context.Context) ([]store.IssuedCert, error) {
	var out []store.IssuedCert
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCerts).ForEach(func(_, v []byte) error {
			var c store.IssuedCert
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode cert log: %w", err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// LatestExpiry implements store.Store.
func (s *Store) LatestExpiry(_ context.Context, rootFP string) (time.Time, error) {
	var latest time.Time
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCerts).ForEach(func(_, v []byte) error {
			var c store.IssuedCert
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode cert log: %w", err)
			}
			if c.RootFP == rootFP && c.NotAfter.After(latest) {
				latest = c.NotAfter
			}
			return nil
		})
	})
	return latest, err
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(_ context.Context, e store.AuditEvent) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return putJSON(b, seqKey(seq), e)
	})
}

// Audit implements store.Store.
func (s *Store) Audit(_ context.Context, since time.Time) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var e store.AuditEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit: %w", err)
			}
			if !e.Time.Before(since) {
				out = append(out, e)
			}
			return nil
		})
	})
	return out, err
}

// AuditPage implements store.Store. The cursor is the bbolt sequence of
// the last event looked at, so a page is one short read transaction: a
// slow reader never holds the file open against writers.
func (s *Store) AuditPage(_ context.Context, since time.Time, after uint64, limit int) ([]store.AuditEvent, uint64, error) {
	if limit <= 0 {
		return nil, 0, errors.New("audit page: limit must be positive")
	}
	var (
		out  []store.AuditEvent
		next uint64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if len(out) == limit {
				return nil // next stays at the last event returned
			}
			var e store.AuditEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit: %w", err)
			}
			next = binary.BigEndian.Uint64(k)
			if !e.Time.Before(since) {
				out = append(out, e)
			}
		}
		next = 0 // the end of the trail
		return nil
	})
	return out, next, err
}

// PruneAudit implements store.Store. Events are in append order, so it
// stops at the first one that is recent enough.
func (s *Store) PruneAudit(_ context.Context, before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			var e store.AuditEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit: %w", err)
			}
			if !e.Time.Before(before) {
				return nil
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// SetBan implements store.Store.
func (s *Store) SetBan(_ context.Context, b store.Ban) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bucketBans), []byte(b.SPIFFEID), b)
	})
}

// RemoveBan implements store.Store.
func (s *Store) RemoveBan(_ context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketBans)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// Bans implements store.Store.
func (s *Store) Bans(_ context.Context) ([]store.Ban, error) {
	var out []store.Ban
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketBans).ForEach(func(_, v []byte) error {
			var b store.Ban
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode ban: %w", err)
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// SavePolicy implements store.Store.
func (s *Store) SavePolicy(_ context.Context, p store.PolicyVersion) (store.PolicyVersion, error) {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPolicies)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		p.Revision = int64(seq) //nolint:gosec // bounded: the bucket sequence counts saved policies from 1, never near 2^63
		return putJSON(b, seqKey(seq), newPolicyRecord(p))
	})
	return p, err
}

// policyRecord is a policy version as bolt stores it: store.PolicyVersion's
// fields, with each file as {"name", "content"} (the format data dirs
// already hold; policy.File's own JSON is {"name", "data"}).
type policyRecord struct {
	store.PolicyVersion
	Files []policyFileRecord `json:"files"` // shadows PolicyVersion.Files
}

type policyFileRecord struct {
	Name    string `json:"name"`
	Content []byte `json:"content"`
}

func newPolicyRecord(p store.PolicyVersion) policyRecord {
	r := policyRecord{PolicyVersion: p}
	r.PolicyVersion.Files = nil
	if p.Files != nil { // nil stays null, as before
		r.Files = make([]policyFileRecord, len(p.Files))
	}
	for i, f := range p.Files {
		r.Files[i] = policyFileRecord{Name: f.Name, Content: f.Data}
	}
	return r
}

func (r policyRecord) version() store.PolicyVersion {
	p := r.PolicyVersion
	p.Files = nil
	if r.Files != nil {
		p.Files = make([]policy.File, len(r.Files))
	}
	for i, f := range r.Files {
		p.Files[i] = policy.File{Name: f.Name, Data: f.Content}
	}
	return p
}

// PolicyVersions implements store.Store, oldest first.
func (s *Store) PolicyVersions(_ context.Context) ([]store.PolicyVersion, error) {
	var out []store.PolicyVersion
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPolicies).ForEach(func(_, v []byte) error {
			var r policyRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode policy: %w", err)
			}
			out = append(out, r.version())
			return nil
		})
	})
	return out, err
}

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// seqKey makes sequence numbers sort in insertion order.
func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

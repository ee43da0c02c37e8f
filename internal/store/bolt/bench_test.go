package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"meshward.dev/meshward/internal/store"
)

// BenchmarkRedeemAndRecord is the store's share of one bootstrap: the join
// token is consumed, then the certificate is recorded, from many callers
// at once (run with -cpu to vary them; SetParallelism(16) per proc). It
// measures how well the two fsync'd writes group-commit.
func BenchmarkRedeemAndRecord(b *testing.B) {
	s, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Now()
	const max = 200000
	hash := func(i uint64) []byte {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], i)
		h := sha256.Sum256(k[:])
		return h[:]
	}
	// Tokens are minted in one transaction, outside the timing.
	var minted atomic.Uint64
	mint := func(n int) {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			bk := tx.Bucket(bucketTokens)
			for range n {
				i := minted.Add(1)
				if err := putJSON(bk, hash(i), store.Token{Hash: hash(i), SPIFFEID: "spiffe://example.org/ns/default/sa/web", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	mint(min(b.N+1, max))
	if b.N > max {
		b.Skip("b.N beyond the minted tokens")
	}
	var next atomic.Uint64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := s.ConsumeToken(ctx, hash(i), t0, nil); err != nil {
				b.Error(err)
				return
			}
			if err := s.RecordCert(ctx, store.IssuedCert{Serial: fmt.Sprintf("%x", i), SPIFFEID: "spiffe://example.org/ns/default/sa/web", RootFP: "r", NotAfter: t0.Add(time.Hour), IssuedAt: t0}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bootstraps/s")
}

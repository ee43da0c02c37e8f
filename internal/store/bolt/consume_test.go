package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"meshward.dev/meshward/internal/store"
)

// TestConsumeTokenBatchMixesOutcomes: redemptions that share a batch with
// refused ones (unknown, replayed, refused by check) still succeed, each
// good token exactly once, and every refusal keeps its own error.
func TestConsumeTokenBatchMixesOutcomes(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Now()
	const n = 64
	for i := range n {
		h := []byte(fmt.Sprintf("good-%02d", i))
		if err := s.CreateToken(ctx, store.Token{Hash: h, SPIFFEID: "spiffe://example.org/ns/default/sa/web", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	refuse := errors.New("refused by check")
	var (
		wg                               sync.WaitGroup
		mu                               sync.Mutex
		wins, used, unknown, checkRefuse int
		other                            []error
	)
	for i := range n {
		for kind := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := []byte(fmt.Sprintf("good-%02d", i))
				var check func(store.Token) error
				switch kind {
				case 2:
					h = []byte(fmt.Sprintf("unknown-%02d", i))
				case 3:
					h = []byte(fmt.Sprintf("good-%02d", (i+1)%n)) // races kinds 0 and 1 of another token
					check = func(store.Token) error { return refuse }
				}
				_, err := s.ConsumeToken(ctx, h, t0, check)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrTokenUsed):
					used++
				case errors.Is(err, store.ErrTokenUnknown):
					unknown++
				case errors.Is(err, refuse):
					checkRefuse++
				default:
					other = append(other, err)
				}
			}()
		}
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	// Each good token is won exactly once (by kind 0 or 1); the loser is
	// told it is used; kind 3 is refused by its check or finds it used.
	if wins != n || unknown != n || used+checkRefuse != 2*n {
		t.Errorf("wins %d (want %d), unknown %d (want %d), used %d + check-refused %d (want %d)", wins, n, unknown, n, used, checkRefuse, 2*n)
	}
	for i := range n {
		if _, err := s.ConsumeToken(ctx, []byte(fmt.Sprintf("good-%02d", i)), t0, nil); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("token %d after the race: %v, want used", i, err)
		}
	}
}

package attest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

// TestJoinTokenAttestor: the join token attestor's verdict is the token's
// identity; a verdict accept refuses leaves the token unspent, an accepted
// one spends it.
func TestJoinTokenAttestor(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	toks := &Tokens{Store: st, Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}
	web := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	tok, _, err := toks.Create(ctx, web, time.Minute, pin)
	if err != nil {
		t.Fatal(err)
	}
	var a Attestor = JoinToken{Tokens: toks}
	if a.Name() != JoinTokenName {
		t.Fatalf("name %q, want %q", a.Name(), JoinTokenName)
	}
	refuse := errors.New("csr asks for payments")
	var seen Verdict
	if _, err := a.Attest(ctx, []byte(tok.String()), func(v Verdict) error { seen = v; return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refused verdict: err = %v", err)
	}
	if seen.ID != web {
		t.Fatalf("accept saw %s, want %s", seen.ID, web)
	}
	v, err := a.Attest(ctx, []byte(tok.String()), func(Verdict) error { return nil })
	if err != nil || v.ID != web {
		t.Fatalf("attest = %v, %v; want %s", v, err, web)
	}
	if _, err := a.Attest(ctx, []byte(tok.String()), func(Verdict) error { return nil }); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("replay: err = %v, want ErrTokenUsed", err)
	}
	if _, err := a.Attest(ctx, []byte("not a token"), func(Verdict) error { return nil }); !errors.Is(err, ErrBadToken) {
		t.Fatalf("malformed: err = %v, want ErrBadToken", err)
	}
}

package attest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/store"
	"meshward.dev/meshward/internal/store/bolt"
)

const pin = "0000000000000000000000000000000000000000000000000000000000000000"

func TestTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	toks := &Tokens{Store: st, Now: func() time.Time { return now }}
	web := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")
	allow := func(spiffeid.ID) error { return nil }

	tok, exp, err := toks.Create(ctx, web, time.Minute, pin)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Minute)) {
		t.Fatalf("expiry = %v", exp)
	}
	// A refused check (a CSR for another identity) leaves the token good.
	refuse := errors.New("csr asks for payments")
	if _, err := toks.Redeem(ctx, tok.String(), func(spiffeid.ID) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("redeem with refusing check: %v", err)
	}
	id, err := toks.Redeem(ctx, tok.String(), allow)
	if err != nil || id != web {
		t.Fatalf("redeem = %v, %v; want %s", id, err, web)
	}
	if _, err := toks.Redeem(ctx, tok.String(), allow); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("replay: err = %v, want ErrTokenUsed", err)
	}

	short, _, err := toks.Create(ctx, web, time.Second, pin)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if _, err := toks.Redeem(ctx, short.String(), allow); !errors.Is(err, store.ErrTokenExpired) {
		t.Fatalf("expired: err = %v", err)
	}
	forged := Token{Secret: make([]byte, 32), Pin: pin}
	if _, err := toks.Redeem(ctx, forged.String(), allow); !errors.Is(err, store.ErrTokenUnknown) {
		t.Fatalf("unknown: err = %v", err)
	}
	if _, _, err := toks.Create(ctx, web, 48*time.Hour, pin); err == nil {
		t.Fatal("accepted a token TTL above the maximum")
	}
}

func TestParseToken(t *testing.T) {
	good := Token{Secret: []byte(strings.Repeat("k", 32)), Pin: pin}.String()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"good", good, false},
		{"good with newline", good + "\n", false},
		{"empty", "", true},
		{"wrong prefix", "mwt2" + good[4:], true},
		{"short secret", "mwt1.AAAA." + pin, true},
		{"bad pin", good[:len(good)-1] + "Z", true},
		{"upper-case pin", strings.ToUpper(good[:4]) + good[4:], true},
		{"extra part", good + ".x", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadToken) {
				t.Fatalf("err %v does not wrap ErrBadToken", err)
			}
		})
	}
}

// FuzzParseToken: parsing never panics, and a parsed token formats back to
// a string that parses to the same token.
func FuzzParseToken(f *testing.F) {
	f.Add(Token{Secret: []byte(strings.Repeat("k", 32)), Pin: pin}.String())
	f.Add("mwt1..")
	f.Add("mwt1.AAAA.zz")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || string(again.Secret) != string(tok.Secret) || again.Pin != tok.Pin {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}

// Package attest proves who a workload is before it has a certificate.
// An Attestor turns evidence into a verdict (the identity to sign for);
// join tokens (single use, expiring, stored only as hashes) are the one
// attestor today. (Kubernetes service account token review is planned; see
// docs/architecture.md.)
package attest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/store"
)

// tokenPrefix versions the token format.
const tokenPrefix = "mwt1"

// Defaults and bounds for token lifetimes.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
)

// ErrBadToken is returned (wrapped) for a token string that is malformed.
var ErrBadToken = errors.New("malformed join token")

// Token is a parsed join token: a 32-byte secret, and the pin (hex SHA-256
// of the SubjectPublicKeyInfo) of the CA root the control plane's
// certificate must chain to, so the first connection is authenticated too.
type Token struct {
	Secret []byte
	Pin    string
}

// String formats the token as mwt1.<secret base64url>.<pin hex>.
func (t Token) String() string {
	return tokenPrefix + "." + base64.RawURLEncoding.EncodeToString(t.Secret) + "." + t.Pin
}

// Hash is what the store keeps instead of the secret.
func (t Token) Hash() []byte {
	h := sha256.Sum256(t.Secret)
	return h[:]
}

// ParseToken parses a token string.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: want %s.<secret>.<pin>", ErrBadToken, tokenPrefix)
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(secret) != 32 {
		return Token{}, fmt.Errorf("%w: the secret is not 32 base64url bytes", ErrBadToken)
	}
	pin, err := hex.DecodeString(parts[2])
	if err != nil || len(pin) != sha256.Size || parts[2] != strings.ToLower(parts[2]) {
		return Token{}, fmt.Errorf("%w: the CA pin is not a lower-case hex SHA-256", ErrBadToken)
	}
	return Token{Secret: secret, Pin: parts[2]}, nil
}

// TokenStore is the part of the store join tokens need.
type TokenStore interface {
	CreateToken(ctx context.Context, t store.Token) error
	ConsumeToken(ctx context.Context, hash []byte, now time.Time, check func(store.Token) error) (store.Token, error)
}

// Tokens mints and redeems join tokens.
type Tokens struct {
	Store TokenStore
	Now   func() time.Time
	Rand  io.Reader // nil: crypto/rand
}

// Create mints a token for id, valid for ttl, pinned to the root with SPKI
// pin. Only its hash is stored.
func (t *Tokens) Create(ctx context.Context, id spiffeid.ID, ttl time.Duration, pin string) (Token, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > MaxTokenTTL {
		return Token{}, time.Time{}, fmt.Errorf("token TTL %s is above the %s maximum", ttl, MaxTokenTTL)
	}
	r := t.Rand
	if r == nil {
		r = rand.Reader
	}
	tok := Token{Secret: make([]byte, 32), Pin: pin}
	if _, err := io.ReadFull(r, tok.Secret); err != nil {
		return Token{}, time.Time{}, fmt.Errorf("create token: %w", err)
	}
	now := t.Now()
	exp := now.Add(ttl)
	if err := t.Store.CreateToken(ctx, store.Token{Hash: tok.Hash(), SPIFFEID: id.String(), CreatedAt: now, ExpiresAt: exp}); err != nil {
		return Token{}, time.Time{}, fmt.Errorf("create token: %w", err)
	}
	return tok, exp, nil
}

// Redeem spends a token: check sees the identity it was minted for and may
// refuse (for instance a CSR asking for another identity), in which case
// the token stays unused. Replayed, expired and unknown tokens are refused.
func (t *Tokens) Redeem(ctx context.Context, s string, check func(spiffeid.ID) error) (spiffeid.ID, error) {
	tok, err := ParseToken(s)
	if err != nil {
		return spiffeid.ID{}, err
	}
	var id spiffeid.ID
	_, err = t.Store.ConsumeToken(ctx, tok.Hash(), t.Now(), func(st store.Token) error {
		var err error
		id, err = spiffeid.FromString(st.SPIFFEID)
		if err != nil {
			return fmt.Errorf("stored token identity: %w", err)
		}
		return check(id)
	})
	if err != nil {
		return spiffeid.ID{}, err
	}
	return id, nil
}

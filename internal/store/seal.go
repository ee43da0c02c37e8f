package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// sealMagic prefixes sealed blobs so an unsealed store read with a key (or a
// sealed one read without) fails with a clear error instead of garbage.
const sealMagic = "mwseal1:"

// Sealer encrypts blobs at rest with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// ParseSealKey reads a 32-byte key given as 64 hex characters or as
// standard/URL base64 (the MESHWARD_STORE_KEY format).
func ParseSealKey(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("store key must be 32 bytes, as 64 hex characters or base64 (try: openssl rand -hex 32)")
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("store key: need 32 bytes, got %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain; a nil Sealer returns plain unchanged.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	if s == nil {
		return plain, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, err
	}
	out := append([]byte(sealMagic), nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(sealMagic)), nil
}

// Open decrypts a blob written by Seal.
func (s *Sealer) Open(blob []byte) ([]byte, error) {
	sealed := len(blob) >= len(sealMagic) && string(blob[:len(sealMagic)]) == sealMagic
	switch {
	case s == nil && sealed:
		return nil, errors.New("the CA keys are encrypted: set MESHWARD_STORE_KEY to the key they were sealed with")
	case s == nil:
		return blob, nil
	case !sealed:
		return nil, errors.New("MESHWARD_STORE_KEY is set but the stored CA keys are not encrypted; unset it, or start with a fresh data dir")
	}
	rest := blob[len(sealMagic):]
	n := s.aead.NonceSize()
	if len(rest) < n {
		return nil, errors.New("sealed CA blob is truncated")
	}
	plain, err := s.aead.Open(nil, rest[:n], rest[n:], []byte(sealMagic))
	if err != nil {
		return nil, errors.New("cannot decrypt the CA keys: MESHWARD_STORE_KEY is not the key they were sealed with")
	}
	return plain, nil
}

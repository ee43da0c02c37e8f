package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrBadCSR is returned (wrapped) for every CSR the CA refuses.
var ErrBadCSR = errors.New("bad csr")

// CheckCSR parses a DER PKCS#10 request and checks that it is well signed,
// carries a strong key, and asks for no identity other than want (a CSR may
// ask for none: the CA decides the identity). It returns the parsed request.
func CheckCSR(der []byte, want spiffeid.ID) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify: %w", ErrBadCSR, err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if len(csr.URIs) > 1 {
		return nil, fmt.Errorf("%w: an X.509-SVID has exactly one URI SAN, the CSR asks for %d", ErrBadCSR, len(csr.URIs))
	}
	if len(csr.URIs) == 1 && csr.URIs[0].String() != want.String() {
		return nil, fmt.Errorf("%w: asks for %s but the caller may only have %s", ErrBadCSR, csr.URIs[0], want)
	}
	return csr, nil
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not allowed (use P-256)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too weak (at least 2048; meshward uses ECDSA P-256)", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("public key type %T is not allowed", pub)
	}
}

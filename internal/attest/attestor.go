package attest

import (
	"context"
	"errors"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Attestor proves who a workload is from evidence it presents before it
// has a certificate. The control plane picks one by the kind of evidence
// in a Bootstrap request and signs for the identity in its verdict, never
// for the one a CSR asks for.
type Attestor interface {
	// Name is the evidence type this attestor reads ("join_token").
	Name() string
	// Attest checks evidence and returns the verdict. accept sees the
	// verdict before any single-use evidence is spent and may refuse it
	// (a banned identity, a CSR for another one); its error is returned
	// and the evidence stays unspent. Errors are written to the audit
	// trail: they must not quote the evidence.
	Attest(ctx context.Context, evidence []byte, accept func(Verdict) error) (Verdict, error)
}

// Verdict is what an attestor vouches for.
type Verdict struct {
	// ID is the identity the workload proved: the only one it is issued.
	ID spiffeid.ID
}

// ErrRefused is returned (wrapped) by an attestor that does not believe
// the evidence, for attestors whose refusals have no sentinel of their own
// (a join token's are ErrBadToken and the store's token errors).
var ErrRefused = errors.New("attestation refused")

// JoinTokenName is the evidence type of join tokens.
const JoinTokenName = "join_token"

// JoinToken is the attestor of join tokens: the evidence is the token
// string, the verdict the identity it was minted for, and the token is
// spent only when accept takes the verdict.
type JoinToken struct{ Tokens *Tokens }

// Name implements Attestor.
func (JoinToken) Name() string { return JoinTokenName }

// Attest implements Attestor.
func (j JoinToken) Attest(ctx context.Context, evidence []byte, accept func(Verdict) error) (Verdict, error) {
	id, err := j.Tokens.Redeem(ctx, string(evidence), func(id spiffeid.ID) error {
		return accept(Verdict{ID: id})
	})
	if err != nil {
		return Verdict{}, err
	}
	return Verdict{ID: id}, nil
}

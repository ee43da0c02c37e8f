package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey // nil once a retired root no longer signs
}

// state is immutable once published: changes build a clone.
type state struct {
	trustDomain string
	roots       []keyPair // the trust bundle
	signing     int       // index in roots of the root that signs
	inter       keyPair
	phase       Phase
	phaseSince  time.Time
	retireAfter time.Time // PhaseRetire: when the old root may leave
	rev         int64     // the store revision this state was loaded or saved at (0: not stored); not encoded
}

func (s *state) signingRoot() keyPair { return s.roots[s.signing] }

func (s *state) clone() *state {
	c := *s
	c.roots = append([]keyPair(nil), s.roots...)
	return &c
}

type pairJSON struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key,omitempty"` // PKCS#8
}

type stateJSON struct {
	Version     int        `json:"version"`
	TrustDomain string     `json:"trust_domain"`
	Roots       []pairJSON `json:"roots"`
	Signing     int        `json:"signing"`
	Inter       pairJSON   `json:"intermediate"`
	Phase       Phase      `json:"phase"`
	PhaseSince  time.Time  `json:"phase_since"`
	RetireAfter time.Time  `json:"retire_after,omitzero"`
}

func (s *state) encode() ([]byte, error) {
	j := stateJSON{Version: 1, TrustDomain: s.trustDomain, Signing: s.signing, Phase: s.phase, PhaseSince: s.phaseSince, RetireAfter: s.retireAfter}
	for _, r := range s.roots {
		p, err := encodePair(r)
		if err != nil {
			return nil, err
		}
		j.Roots = append(j.Roots, p)
	}
	p, err := encodePair(s.inter)
	if err != nil {
		return nil, err
	}
	j.Inter = p
	return json.Marshal(j)
}

func encodePair(k keyPair) (pairJSON, error) {
	p := pairJSON{Cert: k.cert.Raw}
	if k.key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return p, err
		}
		p.Key = der
	}
	return p, nil
}

func decodeState(blob []byte) (*state, error) {
	var j stateJSON
	if err := json.Unmarshal(blob, &j); err != nil {
		return nil, fmt.Errorf("decode ca state: %w", err)
	}
	if j.Version != 1 {
		return nil, fmt.Errorf("decode ca state: unknown version %d", j.Version)
	}
	if len(j.Roots) == 0 || j.Signing < 0 || j.Signing >= len(j.Roots) {
		return nil, errors.New("decode ca state: no signing root")
	}
	s := &state{trustDomain: j.TrustDomain, signing: j.Signing, phase: j.Phase, phaseSince: j.PhaseSince, retireAfter: j.RetireAfter}
	for _, p := range j.Roots {
		k, err := decodePair(p)
		if err != nil {
			return nil, err
		}
		s.roots = append(s.roots, k)
	}
	if s.roots[s.signing].key == nil {
		return nil, errors.New("decode ca state: signing root has no key")
	}
	inter, err := decodePair(j.Inter)
	if err != nil {
		return nil, err
	}
	if inter.key == nil {
		return nil, errors.New("decode ca state: intermediate has no key")
	}
	s.inter = inter
	return s, nil
}

func decodePair(p pairJSON) (keyPair, error) {
	cert, err := x509.ParseCertificate(p.Cert)
	if err != nil {
		return keyPair{}, fmt.Errorf("decode ca state: %w", err)
	}
	k := keyPair{cert: cert}
	if len(p.Key) > 0 {
		key, err := x509.ParsePKCS8PrivateKey(p.Key)
		if err != nil {
			return keyPair{}, fmt.Errorf("decode ca state: %w", err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return keyPair{}, fmt.Errorf("decode ca state: key type %T", key)
		}
		k.key = ec
	}
	return k, nil
}

package control

import (
	"context"
	"crypto/x509"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
)

// maxChains bounds the chains the control plane remembers for MeshCheck.
// A fleet holds about two live certificates per workload (the current one
// and the one it renewed from), so this covers a few thousand workloads;
// past it, the chain that expires first is forgotten.
const maxChains = 8192

// chainLog remembers, by leaf serial, the workload chains the control plane
// issued and the ones it verified in a TLS handshake (which covers
// certificates issued before a restart), so `meshward check` can verify
// what a workload reports it holds against the current bundle. It keeps
// chains, never keys, and only until they expire.
type chainLog struct {
	mu       sync.Mutex
	bySerial map[string][][]byte
	notAfter map[string]time.Time
}

// remember records chain (leaf first) if its leaf is a workload SVID.
func (l *chainLog) remember(chain []*x509.Certificate, now time.Time) {
	if len(chain) == 0 || len(chain[0].URIs) != 1 {
		return
	}
	if !isWorkloadURI(chain[0]) {
		return
	}
	serial := identity.SerialHex(chain[0])
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySerial == nil {
		l.bySerial, l.notAfter = map[string][][]byte{}, map[string]time.Time{}
	}
	if _, ok := l.bySerial[serial]; ok {
		return
	}
	if len(l.bySerial) >= maxChains {
		l.pruneLocked(now)
	}
	l.bySerial[serial], l.notAfter[serial] = ders, chain[0].NotAfter
}

// pruneLocked forgets expired chains and, if still full, the one that
// expires first.
func (l *chainLog) pruneLocked(now time.Time) {
	first, firstAt := "", time.Time{}
	for s, at := range l.notAfter {
		if at.Before(now) {
			delete(l.bySerial, s)
			delete(l.notAfter, s)
			continue
		}
		if first == "" || at.Before(firstAt) {
			first, firstAt = s, at
		}
	}
	if len(l.bySerial) >= maxChains && first != "" {
		delete(l.bySerial, first)
		delete(l.notAfter, first)
	}
}

func (l *chainLog) get(serial string) ([][]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.bySerial[serial]
	return c, ok
}

func isWorkloadURI(c *x509.Certificate) bool {
	id, err := x509svid.IDFromCert(c)
	if err != nil {
		return false
	}
	_, _, ok := identity.ParseServiceID(id)
	return ok
}

// MeshCheck implements apiv1.ControlServer. It only reads.
func (s *Server) MeshCheck(ctx context.Context, _ *apiv1.MeshCheckRequest) (*apiv1.MeshCheckResponse, error) {
	if _, err := s.requireAdmin(ctx, "mesh.check"); err != nil {
		return nil, err
	}
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &apiv1.MeshCheckResponse{Status: s.Status(), Chains: map[string]*apiv1.CertChain{}}
	if n := len(versions); n > 0 {
		resp.LatestPolicy = versionMessage(versions[n-1])
	}
	for _, c := range s.cfg.CA.Bundle() {
		resp.Bundle = append(resp.Bundle, c.Raw)
	}
	for _, w := range resp.Status.GetWorkloads() {
		if chain, ok := s.chains.get(w.GetSvidSerial()); ok {
			resp.Chains[w.GetSvidSerial()] = &apiv1.CertChain{Certs: chain}
		}
	}
	resp.ServerTime = s.cfg.Now().UnixNano()
	return resp, nil
}

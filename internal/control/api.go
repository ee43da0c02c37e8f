package control

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/attest"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/store"
)

// Bootstrap implements apiv1.ControlServer. The attestor the evidence is
// for decides the identity; the CSR may only ask for that one.
func (s *Server) Bootstrap(ctx context.Context, req *apiv1.BootstrapRequest) (*apiv1.SVIDResponse, error) {
	a, evidence, err := s.attestorFor(req)
	var v attest.Verdict
	if err == nil {
		v, err = a.Attest(ctx, evidence, func(v attest.Verdict) error {
			if s.isBanned(v.ID) {
				return errBanned
			}
			_, err := ca.CheckCSR(req.GetCsr(), v.ID)
			return err
		})
	}
	joinToken := a != nil && a.Name() == attest.JoinTokenName
	if err != nil {
		if joinToken {
			s.m.tokens.WithLabelValues("refused").Inc()
		}
		s.m.certsRefused.WithLabelValues(refusalReason(err)).Inc()
		ok, dropped := s.refusals.allow(s.cfg.Now())
		if dropped > 0 {
			s.audit(ctx, "cert.refuse", "bootstrap", "", fmt.Sprintf("%d refused bootstrap attempts not itemized (rate bound)", dropped), "refused")
		}
		if ok {
			s.audit(ctx, "cert.refuse", "bootstrap", v.ID.String(), err.Error(), "refused")
		}
		return nil, toStatus(err)
	}
	if joinToken {
		s.m.tokens.WithLabelValues("used").Inc()
	}
	return s.issue(ctx, req.GetCsr(), v.ID, "bootstrap")
}

// attestorFor picks the attestor by the kind of evidence: a join token in
// token (every request before attestation existed, and one with no
// evidence at all, whose refusal stays a malformed token), or typed
// evidence in attestation.
func (s *Server) attestorFor(req *apiv1.BootstrapRequest) (attest.Attestor, []byte, error) {
	ad := req.GetAttestation()
	switch {
	case ad == nil:
		return s.attestors[attest.JoinTokenName], []byte(req.GetToken()), nil
	case req.GetToken() != "":
		return nil, nil, fmt.Errorf("%w: a join token and %q evidence in one request", errBadEvidence, ad.GetType())
	}
	a, ok := s.attestors[ad.GetType()]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no attestor for evidence of type %q", errBadEvidence, ad.GetType())
	}
	return a, ad.GetPayload(), nil
}

// Renew implements apiv1.ControlServer.
func (s *Server) Renew(ctx context.Context, req *apiv1.RenewRequest) (*apiv1.SVIDResponse, error) {
	id, err := peerID(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, ok := identity.ParseServiceID(id); !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not a workload identity", id)
	}
	if s.isBanned(id) {
		s.m.certsRefused.WithLabelValues("banned").Inc()
		s.audit(ctx, "cert.refuse", id.String(), id.String(), "renew: identity is banned", "refused")
		return nil, toStatus(errBanned)
	}
	return s.issue(ctx, req.GetCsr(), id, id.String())
}

func (s *Server) issue(ctx context.Context, csr []byte, id spiffeid.ID, actor string) (*apiv1.SVIDResponse, error) {
	chain, err := s.cfg.CA.Sign(ctx, csr, id, 0)
	if err != nil {
		s.m.certsRefused.WithLabelValues(refusalReason(err)).Inc()
		s.audit(ctx, "cert.refuse", actor, id.String(), err.Error(), "refused")
		return nil, toStatus(err)
	}
	kind := "renew"
	if actor == "bootstrap" {
		kind = "bootstrap"
	}
	s.m.certsIssued.WithLabelValues(kind).Inc()
	s.chains.remember(chain, s.cfg.Now())
	s.log.Debug("issued svid", observe.KeySPIFFEID, id.String(), observe.KeySerial, identity.SerialHex(chain[0]), observe.KeyNotAfter, chain[0].NotAfter)
	resp := &apiv1.SVIDResponse{SpiffeId: id.String()}
	for _, c := range chain {
		resp.Chain = append(resp.Chain, c.Raw)
	}
	for _, c := range s.cfg.CA.Bundle() {
		resp.Bundle = append(resp.Bundle, c.Raw)
	}
	return resp, nil
}

// Watch implements apiv1.ControlServer.
func (s *Server) Watch(stream apiv1.Control_WatchServer) error {
	ctx := stream.Context()
	id, err := peerID(ctx)
	if err != nil {
		return err
	}
	if _, _, ok := identity.ParseServiceID(id); !ok {
		return status.Errorf(codes.PermissionDenied, "%s is not a workload identity", id)
	}
	key, ok := s.hub.join(newMember(id, s.cfg.Now()), s.cfg.MaxWatchesPerIdentity)
	if !ok {
		s.m.watchRefused.Inc()
		return status.Errorf(codes.ResourceExhausted, "%s already has %d watch streams open", id, s.cfg.MaxWatchesPerIdentity)
	}
	defer func() {
		s.hub.leave(key)
		s.kickAdvance()
	}()
	s.log.Info("workload connected", observe.KeySPIFFEID, id.String())
	defer s.log.Info("workload disconnected", observe.KeySPIFFEID, id.String())

	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			now := s.cfg.Now()
			s.recordDenies(ctx, id, r, now)
			s.recordObservations(ctx, id, r, now)
			s.boundTraffic(r)
			s.hub.report(key, r, now)
			s.kickAdvance()
		}
	}()
	var last *apiv1.MeshUpdate
	for {
		u, changed, changedAt := s.hub.view(key, s.cfg.CA.SigningRootFP(), s.cfg.CA.Phase(), s.endpointsComplete())
		if last == nil || !proto.Equal(u, last) {
			if err := stream.Send(u); err != nil {
				return err
			}
			if last != nil {
				s.m.pushLatency.Observe(since(changedAt))
			}
			last = u
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.hub.done:
			return status.Error(codes.Unavailable, "control plane shutting down")
		case <-recvErr:
			// The workload closed its side (or the stream broke): the
			// stream ends cleanly either way.
			return nil
		case <-changed:
		}
	}
}

var (
	errBanned      = errors.New("identity is banned")
	errBadEvidence = errors.New("bad attestation evidence")
)

// endpointsComplete reports whether the registry can be trusted to list
// every running sidecar: not until sidecars have had time to reconnect
// after a control plane restart (their backoff is at most 15s).
func (s *Server) endpointsComplete() bool {
	return s.cfg.Now().Sub(s.started) > s.cfg.EndpointsWarmup
}

// peerID is the SPIFFE ID of the verified client certificate.
func peerID(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, "this call needs a client certificate (an SVID of this trust domain)")
	}
	id, err := x509svid.IDFromCert(ti.State.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	return id, nil
}

func (s *Server) requireAdmin(ctx context.Context, action string) (spiffeid.ID, error) {
	id, err := peerID(ctx)
	if err != nil {
		return id, err
	}
	if id != identity.AdminID(s.cfg.TrustDomain) {
		s.audit(ctx, action, id.String(), "", "caller is not the admin identity", "refused")
		return id, status.Errorf(codes.PermissionDenied, "%s may not call admin APIs (only %s)", id, identity.AdminID(s.cfg.TrustDomain))
	}
	return id, nil
}

func (s *Server) isBanned(id spiffeid.ID) bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return slices.Contains(s.hub.state.banned, id.String())
}

// refusalReason is the reason label of meshward_control_certs_refused_total.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, attest.ErrBadToken):
		return "token_malformed"
	case errors.Is(err, store.ErrTokenUsed):
		return "token_used"
	case errors.Is(err, store.ErrTokenExpired):
		return "token_expired"
	case errors.Is(err, store.ErrTokenUnknown):
		return "token_unknown"
	case errors.Is(err, ca.ErrBadCSR):
		return "bad_csr"
	case errors.Is(err, errBanned):
		return "banned"
	case errors.Is(err, errBadEvidence):
		return "bad_evidence"
	case errors.Is(err, attest.ErrRefused):
		return "attestation_refused"
	}
	return "internal"
}

// toStatus turns domain errors into gRPC statuses at the edge.
func toStatus(err error) error {
	switch {
	case errors.Is(err, attest.ErrBadToken), errors.Is(err, ca.ErrBadCSR), errors.Is(err, errBadEvidence):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, attest.ErrRefused):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, store.ErrTokenUsed), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUnknown):
		// The sidecar's operator reads this: say what to do next.
		return status.Error(codes.Unauthenticated, err.Error()+"; a join token works once and expires: mint a new one with `meshward token create --service NAME`")
	case errors.Is(err, errBanned):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func certInfo(role, state string, c *x509.Certificate) *apiv1.Certificate {
	return &apiv1.Certificate{
		Role: role, State: state, Subject: c.Subject.String(), Serial: identity.SerialHex(c),
		Fingerprint: identity.Fingerprint(c), NotBefore: c.NotBefore.Unix(), NotAfter: c.NotAfter.Unix(), Der: c.Raw,
	}
}

func (s *Server) audit(ctx context.Context, action, actor, subject, detail, outcome string) {
	e := store.AuditEvent{Time: s.cfg.Now(), Action: action, Actor: actor, Subject: subject, Detail: detail, Outcome: outcome}
	if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
		s.log.Error("audit write failed", observe.KeyError, err)
	}
	level := s.log.Info
	if outcome != "ok" {
		level = s.log.Warn
	}
	level("audit", "action", action, "actor", actor, "subject", subject, "detail", detail, "outcome", outcome)
}

package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policywire"
	"meshward.dev/meshward/internal/store"
)

// loadMeshState restores bundle, policy and bans from the store on start.
func (s *Server) loadMeshState(ctx context.Context) error {
	bans, err := s.cfg.Store.Bans(ctx)
	if err != nil {
		return fmt.Errorf("load bans: %w", err)
	}
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	s.hub.update(func(m *meshState) {
		m.bundle = s.cfg.CA.Bundle()
		for _, b := range bans {
			m.banned = append(m.banned, b.SPIFFEID)
		}
		sort.Strings(m.banned)
		if n := len(versions); n > 0 {
			m.policy, m.policyVersion = policyMessage(versions[n-1]), versionMessage(versions[n-1])
		}
	})
	return nil
}

// CreateToken implements apiv1.ControlServer.
func (s *Server) CreateToken(ctx context.Context, req *apiv1.CreateTokenRequest) (*apiv1.CreateTokenResponse, error) {
	actor, err := s.requireAdmin(ctx, "token.create")
	if err != nil {
		return nil, err
	}
	id, err := identity.ServiceID(s.cfg.TrustDomain, req.GetNamespace(), req.GetService())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if s.isBanned(id) {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is banned; unban it first", id)
	}
	tok, exp, err := s.tokens.Create(ctx, id, time.Duration(req.GetTtlSeconds())*time.Second, s.pin())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.m.tokens.WithLabelValues("created").Inc()
	s.audit(ctx, "token.create", actor.String(), id.String(), "expires "+exp.UTC().Format(time.RFC3339), "ok")
	return &apiv1.CreateTokenResponse{Token: tok.String(), SpiffeId: id.String(), ExpiresAt: exp.Unix()}, nil
}

// pin is the SPKI pin of the root the control plane's certificate chains
// to; join tokens carry it so the first connection is authenticated.
func (s *Server) pin() string {
	fp := s.cfg.CA.SigningRootFP()
	for _, r := range s.cfg.CA.Bundle() {
		if identity.Fingerprint(r) == fp {
			return identity.SPKIPin(r)
		}
	}
	return ""
}

// CAStatus implements apiv1.ControlServer.
func (s *Server) CAStatus(ctx context.Context, _ *apiv1.CAStatusRequest) (*apiv1.CAStatusResponse, error) {
	if _, err := s.requireAdmin(ctx, "ca.status"); err != nil {
		return nil, err
	}
	return s.caStatus(), nil
}

func (s *Server) caStatus() *apiv1.CAStatusResponse {
	st := s.cfg.CA.Status()
	resp := &apiv1.CAStatusResponse{
		TrustDomain:              s.cfg.TrustDomain.Name(),
		Phase:                    string(st.Phase),
		NextIntermediateRotation: st.NextRotation.Unix(),
	}
	for _, r := range st.Roots {
		resp.Certificates = append(resp.Certificates, certInfo("root", r.State, r.Cert))
	}
	resp.Certificates = append(resp.Certificates, certInfo("intermediate", "active", st.Intermediate))
	for _, l := range s.cfg.CA.Lagging(s.hub.holdings()) {
		resp.Lagging = append(resp.Lagging, &apiv1.Lagging{SpiffeId: l.SPIFFEID, Reason: l.Reason})
	}
	switch st.Phase {
	case ca.PhasePrepare:
		resp.PhaseDetail = "the new root is in the bundle; waiting until every connected workload holds it"
	case ca.PhaseActivate:
		resp.PhaseDetail = "the new root signs; waiting until every connected workload has renewed under it"
	case ca.PhaseRetire:
		resp.PhaseDetail = "the old root stays in the bundle until every certificate it signed has expired"
		resp.RetireAfter = st.RetireAfter.Unix()
	default:
		resp.PhaseDetail = "no root rotation under way"
	}
	return resp
}

// RotateCA implements apiv1.ControlServer.
func (s *Server) RotateCA(ctx context.Context, req *apiv1.RotateCARequest) (*apiv1.CAStatusResponse, error) {
	actor, err := s.requireAdmin(ctx, "ca.rotate")
	if err != nil {
		return nil, err
	}
	what := "intermediate"
	if req.GetRoot() {
		what = "root"
		err = s.cfg.CA.StartRootRotation(ctx)
	} else {
		err = s.cfg.CA.RotateIntermediate(ctx)
	}
	if err != nil {
		s.audit(ctx, "ca.rotate", actor.String(), what, err.Error(), "refused")
		if errors.Is(err, ca.ErrRotationInProgress) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, "ca.rotate", actor.String(), what, "manual rotation", "ok")
	s.hub.update(func(m *meshState) { m.bundle = s.cfg.CA.Bundle() })
	s.kickAdvance()
	return s.caStatus(), nil
}

// Ban implements apiv1.ControlServer.
func (s *Server) Ban(ctx context.Context, req *apiv1.BanRequest) (*apiv1.BanResponse, error) {
	actor, err := s.requireAdmin(ctx, "identity.ban")
	if err != nil {
		return nil, err
	}
	id, err := s.memberID(req.GetSpiffeId())
	if err != nil {
		return nil, err
	}
	if id == identity.AdminID(s.cfg.TrustDomain) || id == identity.ControlID(s.cfg.TrustDomain) {
		return nil, status.Error(codes.InvalidArgument, "the control plane and admin identities cannot be banned")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.SetBan(ctx, store.Ban{SPIFFEID: id.String(), Reason: req.GetReason(), At: s.cfg.Now(), By: actor.String()}); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, "identity.ban", actor.String(), id.String(), req.GetReason(), "ok")
	return s.setBanned(func(b []string) []string {
		if !slices.Contains(b, id.String()) {
			b = append(b, id.String())
		}
		return b
	}), nil
}

// Unban implements apiv1.ControlServer.
func (s *Server) Unban(ctx context.Context, req *apiv1.BanRequest) (*apiv1.BanResponse, error) {
	actor, err := s.requireAdmin(ctx, "identity.unban")
	if err != nil {
		return nil, err
	}
	id, err := s.memberID(req.GetSpiffeId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.RemoveBan(ctx, id.String()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "%s is not banned", id)
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.audit(ctx, "identity.unban", actor.String(), id.String(), req.GetReason(), "ok")
	return s.setBanned(func(b []string) []string {
		return slices.DeleteFunc(b, func(x string) bool { return x == id.String() })
	}), nil
}

func (s *Server) setBanned(fn func([]string) []string) *apiv1.BanResponse {
	var out []string
	s.hub.update(func(m *meshState) {
		b := fn(slices.Clone(m.banned))
		sort.Strings(b)
		m.banned = b
		out = b
	})
	return &apiv1.BanResponse{Banned: out}
}

func (s *Server) memberID(raw string) (spiffeid.ID, error) {
	id, err := spiffeid.FromString(raw)
	if err != nil {
		return id, status.Errorf(codes.InvalidArgument, "%q is not a SPIFFE ID: %v", raw, err)
	}
	if !id.MemberOf(s.cfg.TrustDomain) {
		return id, status.Errorf(codes.InvalidArgument, "%s is not in trust domain %s", id, s.cfg.TrustDomain)
	}
	return id, nil
}

// ApplyPolicy implements apiv1.ControlServer.
func (s *Server) ApplyPolicy(ctx context.Context, req *apiv1.ApplyPolicyRequest) (*apiv1.PolicyVersion, error) {
	actor, err := s.requireAdmin(ctx, "policy.apply")
	if err != nil {
		return nil, err
	}
	files := policywire.Files(req.GetFiles())
	var known []string
	if !req.GetAllowUnknownServices() {
		if known, err = s.knownServices(ctx); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return s.savePolicy(ctx, actor, policyChange{
		files: files, commit: req.GetGitCommit(), message: req.GetMessage(), known: known, dryRun: req.GetDryRun(),
	})
}

// policyChange is one apply or rollback: what to store and how.
type policyChange struct {
	files   []policy.File
	commit  string
	note    string // set by the control plane (rollback)
	message string // the applier's why
	known   []string
	dryRun  bool
}

// knownServices is every service the control plane has issued an identity
// to or that has a sidecar connected, as "namespace/name"; nil when there
// is none yet (a new control plane cannot tell a typo from a service to
// come, so it checks nothing).
func (s *Server) knownServices(ctx context.Context) ([]string, error) {
	certs, err := s.cfg.Store.IssuedCerts(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	add := func(raw string) {
		if id, err := spiffeid.FromString(raw); err == nil && id.MemberOf(s.cfg.TrustDomain) {
			if ns, svc, ok := identity.ParseServiceID(id); ok {
				seen[ns+"/"+svc] = true
			}
		}
	}
	for _, c := range certs {
		add(c.SPIFFEID)
	}
	for _, w := range s.hub.workloads() {
		add(w.GetSpiffeId())
	}
	if len(seen) == 0 {
		return nil, nil
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func (s *Server) savePolicy(ctx context.Context, actor spiffeid.ID, c policyChange) (*apiv1.PolicyVersion, error) {
	version, err := s.cfg.CheckPolicy(c.files, c.known)
	if err != nil {
		if !c.dryRun {
			s.audit(ctx, "policy.apply", actor.String(), "", err.Error(), "refused")
		}
		return nil, status.Errorf(codes.InvalidArgument, "policy rejected, the running policy stays in force:\n%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// The content hash is a version's identity: the same content again is
	// not a new revision (whatever commit or message came with it).
	if n := len(versions); n > 0 && versions[n-1].Version == version {
		v := versionMessage(versions[n-1])
		v.Unchanged = true
		return v, nil
	}
	pv := store.PolicyVersion{Version: version, AppliedAt: s.cfg.Now(), AppliedBy: actor.String(), GitCommit: c.commit, Note: c.note, Message: c.message, Files: c.files}
	if c.dryRun {
		pv.Revision = 1 // what the store would number it
		if n := len(versions); n > 0 {
			pv.Revision = versions[n-1].Revision + 1
		}
		return versionMessage(pv), nil
	}
	if pv, err = s.cfg.Store.SavePolicy(ctx, pv); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	detail := fmt.Sprintf("revision %d version %s", pv.Revision, version)
	if c.note != "" {
		detail += " (" + c.note + ")"
	}
	if c.message != "" {
		detail += ": " + c.message
	}
	s.audit(ctx, "policy.apply", actor.String(), version, detail, "ok")
	s.hub.update(func(m *meshState) { m.policy, m.policyVersion = policyMessage(pv), versionMessage(pv) })
	return versionMessage(pv), nil
}

// PolicyHistory implements apiv1.ControlServer.
func (s *Server) PolicyHistory(ctx context.Context, _ *apiv1.PolicyHistoryRequest) (*apiv1.PolicyHistoryResponse, error) {
	if _, err := s.requireAdmin(ctx, "policy.history"); err != nil {
		return nil, err
	}
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &apiv1.PolicyHistoryResponse{}
	for _, v := range versions {
		resp.Versions = append(resp.Versions, versionMessage(v))
	}
	return resp, nil
}

// RollbackPolicy implements apiv1.ControlServer: it applies the files of an
// earlier revision again, as a new revision, so history only grows.
func (s *Server) RollbackPolicy(ctx context.Context, req *apiv1.RollbackPolicyRequest) (*apiv1.PolicyVersion, error) {
	actor, err := s.requireAdmin(ctx, "policy.rollback")
	if err != nil {
		return nil, err
	}
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, v := range versions {
		if v.Revision == req.GetRevision() {
			// A rollback restores what was in force then: the names it used
			// were valid, so they are not checked against today's registry.
			return s.savePolicy(ctx, actor, policyChange{files: v.Files, commit: v.GitCommit, note: fmt.Sprintf("rollback to revision %d", v.Revision)})
		}
	}
	return nil, status.Errorf(codes.NotFound, "no policy revision %d (see meshward policy history)", req.GetRevision())
}

// PolicyRevision implements apiv1.ControlServer.
func (s *Server) PolicyRevision(ctx context.Context, req *apiv1.PolicyRevisionRequest) (*apiv1.PolicyRevisionResponse, error) {
	if _, err := s.requireAdmin(ctx, "policy.history"); err != nil {
		return nil, err
	}
	versions, err := s.cfg.Store.PolicyVersions(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		if req.GetRevision() == 0 || v.Revision == req.GetRevision() {
			return &apiv1.PolicyRevisionResponse{Version: versionMessage(v), Files: policywire.Proto(v.Files)}, nil
		}
	}
	if req.GetRevision() == 0 {
		return nil, status.Error(codes.NotFound, "no policy applied yet")
	}
	return nil, status.Errorf(codes.NotFound, "no policy revision %d (see meshward policy history)", req.GetRevision())
}

// MeshStatus implements apiv1.ControlServer.
func (s *Server) MeshStatus(ctx context.Context, _ *apiv1.MeshStatusRequest) (*apiv1.MeshStatusResponse, error) {
	if _, err := s.requireAdmin(ctx, "mesh.status"); err != nil {
		return nil, err
	}
	return s.Status(), nil
}

// auditPageBytes bounds one page of the Audit stream, far below the
// 4 MiB default gRPC message limit whatever the events hold; a page also
// holds at most auditPageEvents.
const (
	auditPageBytes  = 1 << 20
	auditPageEvents = 1000
)

// Audit implements apiv1.ControlServer: the trail since req.since, oldest
// first, in pages of at most auditPageBytes, read from the store page by
// page, so neither the message limit nor memory bounds the trail.
func (s *Server) Audit(req *apiv1.AuditRequest, stream grpc.ServerStreamingServer[apiv1.AuditResponse]) error {
	ctx := stream.Context()
	if _, err := s.requireAdmin(ctx, "audit.read"); err != nil {
		return err
	}
	since := time.Unix(0, req.GetSince())
	page, size := &apiv1.AuditResponse{}, 0
	var after uint64
	for {
		events, next, err := s.cfg.Store.AuditPage(ctx, since, after, auditPageEvents)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		for _, e := range events {
			ev := auditMessage(e)
			n := proto.Size(ev) + 8 // field tag and length
			if len(page.Events) > 0 && (size+n > auditPageBytes || len(page.Events) == auditPageEvents) {
				if err := stream.Send(page); err != nil {
					return err
				}
				page, size = &apiv1.AuditResponse{}, 0
			}
			page.Events = append(page.Events, ev)
			size += n
		}
		if next == 0 {
			break
		}
		after = next
	}
	if len(page.Events) > 0 {
		return stream.Send(page)
	}
	return nil
}

// auditMessage is a stored audit event on the wire.
func auditMessage(e store.AuditEvent) *apiv1.AuditEvent {
	ev := &apiv1.AuditEvent{Time: e.Time.UnixNano(), Action: e.Action, Actor: e.Actor, Subject: e.Subject, Detail: e.Detail, Outcome: e.Outcome}
	if d := e.Deny; d != nil {
		ev.Deny = &apiv1.AuditDeny{Method: d.Method, Path: d.Path, Port: d.Port, Policy: d.Policy, Rule: d.Rule, Mode: d.Mode,
			PolicyVersion: d.PolicyVersion, GitCommit: d.GitCommit}
		if !d.Reported.IsZero() {
			ev.Deny.Reported = d.Reported.UnixNano()
		}
		ev.Deny.Count, ev.Deny.Target = d.Count, d.Target
		if !d.FirstSeen.IsZero() {
			ev.Deny.FirstSeen = d.FirstSeen.UnixNano()
		}
		if !d.LastSeen.IsZero() {
			ev.Deny.LastSeen = d.LastSeen.UnixNano()
		}
	}
	return ev
}

func policyMessage(v store.PolicyVersion) *apiv1.Policy {
	return &apiv1.Policy{Version: v.Version, Revision: v.Revision, GitCommit: v.GitCommit, Files: policywire.Proto(v.Files)}
}

// fileCount is a policy's number of files for the API's int32 field
// (clamped, though the 8 MiB message limit keeps any policy far below it).
func fileCount(n int) int32 {
	return int32(min(n, math.MaxInt32)) //nolint:gosec // bounded: n is a len (never negative), clamped to MaxInt32
}

func versionMessage(v store.PolicyVersion) *apiv1.PolicyVersion {
	return &apiv1.PolicyVersion{Revision: v.Revision, Version: v.Version, AppliedAt: v.AppliedAt.Unix(), AppliedBy: v.AppliedBy, GitCommit: v.GitCommit, Files: fileCount(len(v.Files)), Note: v.Note, Message: v.Message}
}

// Status is the mesh status for in-process readers (the dashboard): the
// same view MeshStatus gives an admin.
func (s *Server) Status() *apiv1.MeshStatusResponse {
	resp := &apiv1.MeshStatusResponse{
		TrustDomain: s.cfg.TrustDomain.Name(),
		Workloads:   s.hub.workloads(),
		Ca:          s.caStatus(),
		StartedAt:   s.started.Unix(),
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	resp.Banned = slices.Clone(s.hub.state.banned)
	if v := s.hub.state.policyVersion; v != nil {
		resp.Policy = proto.CloneOf(v)
	}
	return resp
}

// AuditEvents is the audit trail since a time, for in-process readers.
func (s *Server) AuditEvents(ctx context.Context, since time.Time) ([]store.AuditEvent, error) {
	return s.cfg.Store.Audit(ctx, since)
}

// CurrentPolicy is the policy set in force (nil before the first apply).
func (s *Server) CurrentPolicy() *apiv1.Policy {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.hub.state.policy
}

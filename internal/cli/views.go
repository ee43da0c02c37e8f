package cli

import (
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/policy/policytest"
	"meshward.dev/meshward/internal/proxy"
)

// The views below are what -o json and -o yaml print for the commands that
// talk to the control plane, in the convention of output.go: snake_case
// keys, RFC 3339 UTC times (null when unset), numbers as numbers, Go
// duration strings.

// certView is one CA certificate (ca show, ca status, status).
type certView struct {
	Role        string     `json:"role"`
	State       string     `json:"state"`
	Subject     string     `json:"subject"`
	Serial      string     `json:"serial"`
	Fingerprint string     `json:"fingerprint"`
	NotBefore   *time.Time `json:"not_before"`
	NotAfter    *time.Time `json:"not_after"`
	DER         []byte     `json:"der"` // base64
}

type laggingView struct {
	SpiffeID string `json:"spiffe_id"`
	Reason   string `json:"reason"`
}

// caView is `ca show`, `ca status` and `ca rotate`.
type caView struct {
	TrustDomain              string        `json:"trust_domain"`
	Certificates             []certView    `json:"certificates"`
	Phase                    string        `json:"phase"`
	PhaseDetail              string        `json:"phase_detail"`
	Lagging                  []laggingView `json:"lagging"`
	NextIntermediateRotation *time.Time    `json:"next_intermediate_rotation"`
	RetireAfter              *time.Time    `json:"retire_after"`
}

func newCAView(st *apiv1.CAStatusResponse) *caView {
	if st == nil {
		return nil
	}
	v := &caView{
		TrustDomain: st.TrustDomain, Phase: st.Phase, PhaseDetail: st.PhaseDetail,
		Certificates: []certView{}, Lagging: []laggingView{},
		NextIntermediateRotation: unixTime(st.NextIntermediateRotation), RetireAfter: unixTime(st.RetireAfter),
	}
	for _, c := range st.Certificates {
		v.Certificates = append(v.Certificates, certView{
			Role: c.Role, State: c.State, Subject: c.Subject, Serial: c.Serial, Fingerprint: c.Fingerprint,
			NotBefore: unixTime(c.NotBefore), NotAfter: unixTime(c.NotAfter), DER: orEmpty(c.Der),
		})
	}
	for _, l := range st.Lagging {
		v.Lagging = append(v.Lagging, laggingView{SpiffeID: l.SpiffeId, Reason: l.Reason})
	}
	return v
}

// policyVersionView is one applied policy version (policy apply, history,
// rollback, status).
type policyVersionView struct {
	Revision  int64      `json:"revision"`
	Version   string     `json:"version"`
	AppliedAt *time.Time `json:"applied_at"`
	AppliedBy string     `json:"applied_by"`
	GitCommit string     `json:"git_commit"`
	Files     int32      `json:"files"`
	Note      string     `json:"note"`
	Message   string     `json:"message"`
	Unchanged bool       `json:"unchanged"` // the content was the latest revision's: no revision was made
}

func newPolicyVersionView(p *apiv1.PolicyVersion) *policyVersionView {
	if p == nil {
		return nil
	}
	return &policyVersionView{
		Revision: p.Revision, Version: p.Version, AppliedAt: unixTime(p.AppliedAt), AppliedBy: p.AppliedBy,
		GitCommit: p.GitCommit, Files: p.Files, Note: p.Note, Message: p.Message, Unchanged: p.Unchanged,
	}
}

type policyHistoryView struct {
	Versions []*policyVersionView `json:"versions"`
}

func newPolicyHistoryView(h *apiv1.PolicyHistoryResponse) policyHistoryView {
	v := policyHistoryView{Versions: []*policyVersionView{}}
	for _, p := range h.GetVersions() {
		v.Versions = append(v.Versions, newPolicyVersionView(p))
	}
	return v
}

type trafficView struct {
	Kind        string  `json:"kind"`
	Source      string  `json:"source"`
	Destination string  `json:"destination"`
	Protocol    string  `json:"protocol"`
	Code        string  `json:"code"`
	Decision    string  `json:"decision"`
	Value       float64 `json:"value"`
}

// workloadView is one connected sidecar in `status`.
type workloadView struct {
	SpiffeID          string        `json:"spiffe_id"`
	Service           string        `json:"service"`
	Namespace         string        `json:"namespace"`
	InboundAddr       string        `json:"inbound_addr"`
	AdminAddr         string        `json:"admin_addr"`
	SvidSerial        string        `json:"svid_serial"`
	SvidNotAfter      *time.Time    `json:"svid_not_after"`
	PolicyVersion     string        `json:"policy_version"`
	PolicyError       string        `json:"policy_error"`
	ActiveConnections int64         `json:"active_connections"`
	TotalRequests     int64         `json:"total_requests"`
	ConnectedSince    *time.Time    `json:"connected_since"`
	LastReport        *time.Time    `json:"last_report"`
	Traffic           []trafficView `json:"traffic"`
	TrafficAt         *time.Time    `json:"traffic_at"`
}

// statusView is `status`.
type statusView struct {
	TrustDomain string             `json:"trust_domain"`
	StartedAt   *time.Time         `json:"started_at"`
	Policy      *policyVersionView `json:"policy"` // null: none applied
	CA          *caView            `json:"ca"`
	Workloads   []workloadView     `json:"workloads"`
	Banned      []string           `json:"banned"`
}

func newStatusView(st *apiv1.MeshStatusResponse) statusView {
	v := statusView{
		TrustDomain: st.TrustDomain, StartedAt: unixTime(st.StartedAt), Policy: newPolicyVersionView(st.Policy),
		CA: newCAView(st.Ca), Workloads: []workloadView{}, Banned: orEmpty(st.Banned),
	}
	for _, w := range st.Workloads {
		wv := workloadView{
			SpiffeID: w.SpiffeId, Service: w.Service, Namespace: w.Namespace, InboundAddr: w.InboundAddr, AdminAddr: w.AdminAddr,
			SvidSerial: w.SvidSerial, SvidNotAfter: unixTime(w.SvidNotAfter), PolicyVersion: w.PolicyVersion, PolicyError: w.PolicyError,
			ActiveConnections: w.ActiveConnections, TotalRequests: w.TotalRequests,
			ConnectedSince: unixTime(w.ConnectedSince), LastReport: unixTime(w.LastReport),
			Traffic: []trafficView{}, TrafficAt: unixNanoTime(w.TrafficAt),
		}
		for _, c := range w.Traffic {
			wv.Traffic = append(wv.Traffic, trafficView{Kind: c.Kind, Source: c.Source, Destination: c.Destination,
				Protocol: c.Protocol, Code: c.Code, Decision: c.Decision, Value: c.Value})
		}
		v.Workloads = append(v.Workloads, wv)
	}
	return v
}

// auditView is one record of `audit`.
type auditView struct {
	Time    *time.Time `json:"time"`
	Action  string     `json:"action"`
	Outcome string     `json:"outcome"`
	Actor   string     `json:"actor"`
	Subject string     `json:"subject"`
	Detail  string     `json:"detail"`
	// Deny is a reported deny's fields (request.deny, request.audit-deny);
	// absent on other events and on denies recorded before it existed.
	Deny *auditDenyView `json:"deny,omitempty"`
}

// auditDenyView is the deny of an audit record: the caller is the
// record's actor, the service its subject.
type auditDenyView struct {
	Method        string     `json:"method"` // "" for a connection
	Path          string     `json:"path"`
	Port          int        `json:"port"`
	Policy        string     `json:"policy"`
	Rule          string     `json:"rule"`
	Mode          string     `json:"mode"`
	PolicyVersion string     `json:"policy_version"`
	GitCommit     string     `json:"git_commit"`
	Reported      *time.Time `json:"reported"` // the time the sidecar claims; time is when it was received
}

func newAuditView(e *apiv1.AuditEvent) auditView {
	v := auditView{Time: unixNanoTime(e.Time), Action: e.Action, Outcome: e.Outcome, Actor: e.Actor, Subject: e.Subject, Detail: e.Detail}
	if d := e.GetDeny(); d != nil {
		v.Deny = &auditDenyView{Method: d.Method, Path: d.Path, Port: int(d.Port), Policy: d.Policy, Rule: d.Rule, Mode: d.Mode,
			PolicyVersion: d.PolicyVersion, GitCommit: d.GitCommit, Reported: unixNanoTime(d.Reported)}
	}
	return v
}

// tokenView is `token create`.
type tokenView struct {
	Token     string     `json:"token"`
	SpiffeID  string     `json:"spiffe_id"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// banView is `identity ban` and `identity unban`.
type banView struct {
	Banned []string `json:"banned"`
}

// identityFetchView is `identity fetch`.
type identityFetchView struct {
	SpiffeID string            `json:"spiffe_id"`
	Serial   string            `json:"serial"`
	NotAfter *time.Time        `json:"not_after"`
	Files    identityFilesView `json:"files"`
}

type identityFilesView struct {
	SVID   string `json:"svid"`
	Key    string `json:"key"`
	Bundle string `json:"bundle"`
}

// tapView is one record of `tap`.
type tapView struct {
	Time        *time.Time `json:"time"`
	Direction   string     `json:"direction"`
	Protocol    string     `json:"protocol"`
	Source      string     `json:"source"`
	Destination string     `json:"destination"`
	Port        int        `json:"port"`
	Method      string     `json:"method"`
	Path        string     `json:"path"`
	Status      int        `json:"status"`
	GRPCStatus  string     `json:"grpc_status"` // gRPC only: "0" to "16", "other" or "none"; "" otherwise
	Duration    string     `json:"duration"`
	Decision    string     `json:"decision"`
	Policy      string     `json:"policy"`
	Rule        string     `json:"rule"`
	Mode        string     `json:"mode"`
}

func newTapView(e *proxy.Event) tapView {
	return tapView{
		Time: utcTime(e.Time), Direction: e.Direction, Protocol: e.Protocol, Source: e.Source, Destination: e.Destination,
		Port: e.Port, Method: e.Method, Path: e.Path, Status: e.Status, GRPCStatus: e.GRPCStatus, Duration: e.Duration.String(),
		Decision: e.Decision, Policy: e.Policy, Rule: e.Rule, Mode: e.Mode,
	}
}

// dashboardView is `dashboard`.
type dashboardView struct {
	URL    string `json:"url"`
	Opened bool   `json:"opened"`
}

// policyLintView is `policy lint`.
type policyLintView struct {
	PolicyVersion string           `json:"policy_version"`
	Policies      int              `json:"policies"`
	NamesChecked  bool             `json:"names_checked"` // a mesh file was given, so targets and sources were checked
	Warnings      []policy.Warning `json:"warnings"`
}

// policyTestView is `policy test`.
type policyTestView struct {
	PolicyVersion string               `json:"policy_version"`
	Passed        int                  `json:"passed"`
	Failed        int                  `json:"failed"`
	Rules         int                  `json:"rules"`
	Results       []policytest.Result  `json:"results"`
	Uncovered     []policytest.RuleRef `json:"uncovered"`
}

func newPolicyTestView(r *policytest.Report) policyTestView {
	return policyTestView{PolicyVersion: r.Version, Passed: r.Passed, Failed: r.Failed, Rules: r.Rules,
		Results: orEmpty(r.Results), Uncovered: orEmpty(r.Uncovered)}
}

type policyDiffSideView struct {
	Source  string `json:"source"`
	Version string `json:"version"`
}

// policyDiffView is `policy diff`.
type policyDiffView struct {
	Old     policyDiffSideView `json:"old"`
	New     policyDiffSideView `json:"new"`
	Widens  bool               `json:"widens"`
	Changes []policy.Change    `json:"changes"`
}

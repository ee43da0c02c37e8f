package policy

import (
	"time"

	"meshward.dev/meshward/internal/config"
)

// Kinds read from a policies directory.
const (
	KindMeshConfig   = "MeshConfig"
	KindAccessPolicy = "AccessPolicy"
	KindPolicyTest   = "PolicyTest"
)

// Values of the enumerated fields.
const (
	ModeEnforce = "enforce"
	ModeAudit   = "audit"

	ActionDeny  = "deny"
	ActionAllow = "allow"

	MTLSStrict     = "strict"
	MTLSPermissive = "permissive"

	PathStrict     = "strict"
	PathPermissive = "permissive"

	// RuleDefaultDeny and RuleDefaultAllow name the default in a Decision
	// when no rule matched.
	RuleDefaultDeny  = "default-deny"
	RuleDefaultAllow = "default-allow"
)

// MeshConfig is the mesh-wide defaults document. Every field is optional;
// Parse fills in the defaults (defaults.go). Weakening values (mtls:
// permissive, defaultAction: allow, pathNormalization: permissive) must be
// written down and are reported by Lint.
type MeshConfig struct {
	TrustDomain string `yaml:"trustDomain" json:"trustDomain"`
	MTLS        string `yaml:"mtls" json:"mtls"`
	// PermissiveUntil (RFC 3339) is required with mtls: permissive; after
	// it, mTLS is strict again.
	PermissiveUntil   string       `yaml:"permissiveUntil" json:"permissiveUntil,omitempty"`
	DefaultAction     string       `yaml:"defaultAction" json:"defaultAction"`
	PathNormalization string       `yaml:"pathNormalization" json:"pathNormalization"`
	Certificates      Certificates `yaml:"certificates" json:"certificates"`
	// RefuseOverrideHeaders makes inbound sidecars refuse (400) requests
	// carrying X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override,
	// X-Original-URL or X-Rewrite-URL (under any case, '_' for '-'):
	// fields with which some frameworks serve another method or path than
	// the one policy decided. Off by default: some clients send them to
	// apps that rely on them.
	RefuseOverrideHeaders bool `yaml:"refuseOverrideHeaders" json:"refuseOverrideHeaders,omitempty"`
	// Telemetry is what sidecars record about allowed traffic.
	// Unset switches stay nil (DefaultTelemetry fills them where they are
	// used), so a MeshConfig that leaves them alone keeps its version.
	Telemetry Telemetry `yaml:"telemetry" json:"telemetry,omitzero"`
}

// Telemetry switches what sidecars record about allowed traffic; a sidecar's
// own flags (meshward proxy --access-log, --metrics, --tracing) override
// them for that sidecar. Denies are always logged, counted
// (meshward_policy_denies_total) and reported to the audit trail, whatever
// these say. A nil field is the default (DefaultTelemetry).
type Telemetry struct {
	// AccessLog logs one line per allowed request or connection. Off by
	// default, as in Istio and Linkerd: measured, the line cost about as
	// much CPU as the rest of the request (docs/benchmarks.md).
	AccessLog *bool `yaml:"accessLog" json:"accessLog,omitempty"`
	// Metrics records the per-request series (meshward_requests_total,
	// meshward_request_duration_seconds, meshward_grpc_responses_total),
	// which also feed the dashboard's traffic graph. On by default.
	Metrics *bool `yaml:"metrics" json:"metrics,omitempty"`
	// Tracing exports a span per HTTP/gRPC request, when the sidecar has
	// an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT). On by default.
	Tracing *bool `yaml:"tracing" json:"tracing,omitempty"`
}

// Telemetry defaults.
const (
	DefaultAccessLog = false
	DefaultMetrics   = true
	DefaultTracing   = true
)

// Over is t with every nil field taken from base.
func (t Telemetry) Over(base Telemetry) Telemetry {
	if t.AccessLog == nil {
		t.AccessLog = base.AccessLog
	}
	if t.Metrics == nil {
		t.Metrics = base.Metrics
	}
	if t.Tracing == nil {
		t.Tracing = base.Tracing
	}
	return t
}

// DefaultTelemetry is every switch at its default.
func DefaultTelemetry() Telemetry {
	return Telemetry{AccessLog: new(DefaultAccessLog), Metrics: new(DefaultMetrics), Tracing: new(DefaultTracing)}
}

// Certificates are the certificate lifetimes the CA issues with.
type Certificates struct {
	WorkloadTTL     time.Duration `yaml:"workloadTTL" json:"workloadTTL"`
	IntermediateTTL time.Duration `yaml:"intermediateTTL" json:"intermediateTTL"`
	RootTTL         time.Duration `yaml:"rootTTL" json:"rootTTL"`
}

// AccessPolicy says who may call one service. A service without a policy is
// decided by MeshConfig.defaultAction (deny unless written otherwise).
type AccessPolicy struct {
	Name      string           `json:"name"`
	Namespace string           `json:"namespace"`
	Spec      AccessPolicySpec `json:"spec"`

	doc *config.Document
}

// File and Line say where the policy was read from.
func (p *AccessPolicy) File() string { return p.doc.File }

// Line is the line of the policy's document.
func (p *AccessPolicy) Line() int { return p.doc.Line }

// Doc is the document the policy was decoded from, for positions.
func (p *AccessPolicy) Doc() *config.Document { return p.doc }

// AccessPolicySpec is the spec of an AccessPolicy.
type AccessPolicySpec struct {
	Target string `yaml:"target" json:"target"`
	Mode   string `yaml:"mode" json:"mode"`
	Rules  []Rule `yaml:"rules" json:"rules"`
}

// Rule allows the callers in From to do what To lists, when When holds.
// Rules are OR-ed; the first that matches decides.
type Rule struct {
	Name string      `yaml:"name" json:"name"`
	From []Source    `yaml:"from" json:"from"`
	To   []Operation `yaml:"to" json:"to,omitempty"`
	When string      `yaml:"when" json:"when,omitempty"`
}

// Source is one caller: exactly one field is set. Service is a service of
// the policy's own namespace; Namespace "*" is every workload of the trust
// domain.
type Source struct {
	Service   string `yaml:"service" json:"service,omitempty"`
	Identity  string `yaml:"identity" json:"identity,omitempty"`
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
}

// Operation is what a caller may do. Empty fields match anything; the fields
// of one operation are AND-ed, the operations of a rule OR-ed. Methods,
// Paths and Headers make an operation L7-only: it never matches an L4
// (per-connection) request.
type Operation struct {
	Ports   []int             `yaml:"ports" json:"ports,omitempty"`
	Methods []string          `yaml:"methods" json:"methods,omitempty"`
	Paths   []string          `yaml:"paths" json:"paths,omitempty"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
}

func (o *Operation) l7() bool {
	return len(o.Methods) > 0 || len(o.Paths) > 0 || len(o.Headers) > 0
}

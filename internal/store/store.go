// Package store defines what the control plane persists (CA state, join
// tokens, the issued-certificate log, the audit trail, bans and policy
// versions) behind one interface, so the default embedded store (bolt) and
// an HA store (PostgreSQL) are interchangeable: Open picks one by URL, and
// every one passes the same conformance suite (storetest). It does not
// interpret the CA blob or the policy files it holds.
package store

import (
	"context"
	"errors"
	"time"

	"meshward.dev/meshward/internal/policy"
)

// Errors callers branch on.
var (
	ErrNotFound     = errors.New("not found")
	ErrTokenUsed    = errors.New("join token already used")
	ErrTokenExpired = errors.New("join token expired")
	ErrTokenUnknown = errors.New("join token unknown")
	// ErrCAConflict: SaveCA was given a revision that is no longer the
	// stored one (another control plane saved the CA in between). Nothing
	// was written; load the CA again.
	ErrCAConflict = errors.New("the CA state changed since it was loaded (another control plane saved it)")
	// ErrSerialExists: RecordCert was given a serial already in the log.
	ErrSerialExists = errors.New("certificate serial already recorded")
)

// Store is the control plane's persistence. Every method is atomic: a crash
// leaves either the whole change or none of it.
type Store interface {
	// LoadCA returns the CA state blob and its revision, or ErrNotFound
	// (and revision 0) before the first save. Revisions are positive.
	LoadCA(ctx context.Context) (blob []byte, rev int64, err error)
	// SaveCA is a compare-and-swap: it stores blob only if the stored
	// revision is still prev (0: no CA stored yet), and returns the new
	// revision, which differs from every earlier one. Otherwise it stores
	// nothing and returns ErrCAConflict, so two control planes can never
	// both rotate the CA.
	SaveCA(ctx context.Context, blob []byte, prev int64) (rev int64, err error)

	CreateToken(ctx context.Context, t Token) error
	// ConsumeToken marks the token with this hash used and returns it, in
	// one transaction, so no token is ever good twice. check runs inside
	// the transaction before the token is marked; an error from it leaves
	// the token unused.
	ConsumeToken(ctx context.Context, hash []byte, now time.Time, check func(Token) error) (Token, error)

	// RecordCert adds c to the issued-certificate log. A serial already in
	// the log is refused with ErrSerialExists and its record is kept.
	RecordCert(ctx context.Context, c IssuedCert) error
	// IssuedCerts lists the issued-certificate log, each serial once.
	IssuedCerts(ctx context.Context) ([]IssuedCert, error)
	// LatestExpiry is the latest NotAfter of certificates that chain to the
	// root with fingerprint rootFP (zero time when there are none).
	LatestExpiry(ctx context.Context, rootFP string) (time.Time, error)

	AppendAudit(ctx context.Context, e AuditEvent) error
	Audit(ctx context.Context, since time.Time) ([]AuditEvent, error)
	// AuditPage returns, in append order, at most limit events since
	// since that were appended after the cursor after (0: from the
	// first), and the cursor to pass for the next page (0: there is no
	// more). Readers of a trail of any size page through it.
	AuditPage(ctx context.Context, since time.Time, after uint64, limit int) (events []AuditEvent, next uint64, err error)
	// PruneAudit deletes audit events older than before and returns how
	// many it deleted.
	PruneAudit(ctx context.Context, before time.Time) (int, error)

	SetBan(ctx context.Context, b Ban) error
	RemoveBan(ctx context.Context, id string) error
	Bans(ctx context.Context) ([]Ban, error)

	// SavePolicy stores a new policy version and returns it with its
	// revision number: 1 for the first, then the latest revision + 1, with
	// no gap and no repeat even when saves race (p.Revision is ignored).
	SavePolicy(ctx context.Context, p PolicyVersion) (PolicyVersion, error)
	// PolicyVersions lists every saved version, oldest (revision 1) first.
	PolicyVersions(ctx context.Context) ([]PolicyVersion, error)

	Close() error
}

// Token is a join token as stored: only its hash, never the secret.
type Token struct {
	Hash      []byte
	SPIFFEID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until consumed
}

// IssuedCert is one line of the issued-certificate log.
type IssuedCert struct {
	Serial   string
	SPIFFEID string
	RootFP   string
	NotAfter time.Time
	IssuedAt time.Time
}

// AuditEvent is one entry of the audit trail.
type AuditEvent struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail,omitempty"`
	Outcome string    `json:"outcome"`
	// Deny is set on the denies a sidecar reported (request.deny,
	// request.audit-deny): the same facts as Detail, as fields, for
	// readers that show them. Events stored before it existed, and
	// summaries of denies that were not itemized, have only Detail.
	Deny *AuditDeny `json:"deny,omitempty"`
}

// AuditDeny is one reported deny in the audit trail. The caller is the
// event's Actor and the service its Subject; the event's Time is when the
// control plane received the report.
type AuditDeny struct {
	Method        string    `json:"method,omitempty"` // "" for a connection (L4)
	Path          string    `json:"path,omitempty"`
	Port          int32     `json:"port"`
	Policy        string    `json:"policy,omitempty"`
	Rule          string    `json:"rule,omitempty"` // the rule or default that decided
	Mode          string    `json:"mode,omitempty"` // enforce | audit
	PolicyVersion string    `json:"policy_version,omitempty"`
	GitCommit     string    `json:"git_commit,omitempty"` // of PolicyVersion, when known
	Reported      time.Time `json:"reported,omitzero"`    // the time the sidecar claims
	// Set on request.observed events (learn mode): how many calls of this
	// shape the sidecar aggregated, when it claims it saw the first and
	// the last, and the observed service's SPIFFE ID (Subject is only its
	// name).
	Count     int64     `json:"count,omitempty"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Target    string    `json:"target,omitempty"`
}

// Ban denies an identity mesh-wide.
type Ban struct {
	SPIFFEID string    `json:"spiffe_id"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	By       string    `json:"by"`
}

// PolicyVersion is one applied policy set.
type PolicyVersion struct {
	Revision  int64         `json:"revision"`
	Version   string        `json:"version"` // content hash
	AppliedAt time.Time     `json:"applied_at"`
	AppliedBy string        `json:"applied_by"`
	GitCommit string        `json:"git_commit,omitempty"`
	Note      string        `json:"note,omitempty"`
	Message   string        `json:"message,omitempty"` // the applier's why (--message)
	Files     []policy.File `json:"files"`             // a store writes its own format: bolt keeps {name, content}
}

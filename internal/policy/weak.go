package policy

import (
	"strings"
	"time"
)

// MaxWorkloadTTL is the longest workload certificate lifetime a MeshConfig
// may ask for (spec.certificates.workloadTTL).
const MaxWorkloadTTL = 30 * 24 * time.Hour

// What makes a setting weaker than the default, decided here once. Lint
// applies these to a valid set; the scanner (internal/scan/rules/meshward)
// applies them to manifests as written, valid or not, so each predicate
// takes the value as written and compares it case-insensitively (on a
// valid set the values are exact, and the answers are the same).

// PermissiveMTLS reports whether spec.mtls asks sidecars to accept
// plaintext callers.
func PermissiveMTLS(mtls string) bool { return strings.EqualFold(mtls, MTLSPermissive) }

// DisabledMTLS reports whether spec.mtls is a value that turns mutual TLS
// off. Compile rejects every one of them; the scanner reports them.
func DisabledMTLS(mtls string) bool {
	switch strings.ToLower(mtls) {
	case "disable", "disabled", "off", "none", "false":
		return true
	}
	return false
}

// DefaultAllow reports whether spec.defaultAction lets every service
// without a policy accept every caller.
func DefaultAllow(action string) bool { return strings.EqualFold(action, ActionAllow) }

// WeakPathNormalization reports whether spec.pathNormalization is set to
// anything but strict (unset is strict).
func WeakPathNormalization(mode string) bool {
	return mode != "" && !strings.EqualFold(mode, PathStrict)
}

// AuditMode reports whether an AccessPolicy's spec.mode only logs what it
// would deny.
func AuditMode(mode string) bool { return strings.EqualFold(mode, ModeAudit) }

// LongLivedWorkloadTTL reports whether a workload certificate lifetime is
// above MaxWorkloadTTL.
func LongLivedWorkloadTTL(d time.Duration) bool { return d > MaxWorkloadTTL }

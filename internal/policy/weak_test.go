package policy

import (
	"testing"
	"time"
)

func TestWeakSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"mtls permissive", PermissiveMTLS("permissive"), true},
		{"mtls Permissive (as written)", PermissiveMTLS("Permissive"), true},
		{"mtls strict", PermissiveMTLS("strict"), false},
		{"mtls unset", PermissiveMTLS(""), false},
		{"mtls off", DisabledMTLS("OFF"), true},
		{"mtls false", DisabledMTLS("false"), true},
		{"mtls permissive is not disabled", DisabledMTLS("permissive"), false},
		{"mtls unset is not disabled", DisabledMTLS(""), false},
		{"default allow", DefaultAllow("allow"), true},
		{"default Allow", DefaultAllow("Allow"), true},
		{"default deny", DefaultAllow("deny"), false},
		{"paths permissive", WeakPathNormalization("permissive"), true},
		{"paths none", WeakPathNormalization("none"), true},
		{"paths STRICT", WeakPathNormalization("STRICT"), false},
		{"paths unset (strict)", WeakPathNormalization(""), false},
		{"mode audit", AuditMode("audit"), true},
		{"mode enforce", AuditMode("enforce"), false},
		{"ttl 30 days", LongLivedWorkloadTTL(720 * time.Hour), false},
		{"ttl 90 days", LongLivedWorkloadTTL(2160 * time.Hour), true},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

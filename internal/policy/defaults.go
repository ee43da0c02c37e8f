package policy

import (
	"time"

	"meshward.dev/meshward/internal/config"
)

// MeshConfig defaults (DESIGN.md: MeshConfig).
const (
	DefaultWorkloadTTL     = time.Hour
	DefaultIntermediateTTL = 7 * 24 * time.Hour
	DefaultRootTTL         = 365 * 24 * time.Hour
)

// DefaultMeshConfig is the configuration of a policies directory without a
// MeshConfig: strict mTLS, default deny, strict path normalization.
func DefaultMeshConfig() MeshConfig {
	c := MeshConfig{}
	c.applyDefaults("")
	return c
}

func (c *MeshConfig) applyDefaults(meshTrustDomain string) {
	if c.TrustDomain == "" {
		c.TrustDomain = meshTrustDomain
	}
	if c.TrustDomain == "" {
		c.TrustDomain = config.DefaultTrustDomain
	}
	if c.MTLS == "" {
		c.MTLS = MTLSStrict
	}
	if c.DefaultAction == "" {
		c.DefaultAction = ActionDeny
	}
	if c.PathNormalization == "" {
		c.PathNormalization = PathStrict
	}
	if c.Certificates.WorkloadTTL == 0 {
		c.Certificates.WorkloadTTL = DefaultWorkloadTTL
	}
	if c.Certificates.IntermediateTTL == 0 {
		c.Certificates.IntermediateTTL = DefaultIntermediateTTL
	}
	if c.Certificates.RootTTL == 0 {
		c.Certificates.RootTTL = DefaultRootTTL
	}
}

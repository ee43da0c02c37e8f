package ca

import "time"

// Defaults from DESIGN.md.
const (
	DefaultWorkloadTTL     = time.Hour
	DefaultIntermediateTTL = 7 * 24 * time.Hour
	DefaultRootTTL         = 365 * 24 * time.Hour

	// maxWorkloadTTL caps what a caller may ask for.
	maxWorkloadTTL = 30 * 24 * time.Hour
)

func (c *Config) setDefaults() {
	if c.WorkloadTTL == 0 {
		c.WorkloadTTL = DefaultWorkloadTTL
	}
	if c.IntermediateTTL == 0 {
		c.IntermediateTTL = DefaultIntermediateTTL
	}
	if c.RootTTL == 0 {
		c.RootTTL = DefaultRootTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

package config

// Mesh defaults (DESIGN.md: Mesh).
const (
	DefaultTrustDomain     = "meshward.local"
	DefaultDataDir         = ".meshward"
	DefaultControlListen   = "127.0.0.1:7443"
	DefaultDashboardListen = "127.0.0.1:9900"
	DefaultPoliciesDir     = "./policies"
	DefaultNamespace       = "default"
	DefaultServiceProtocol = ProtocolHTTP
)

func (m *Mesh) applyDefaults() {
	if m.TrustDomain == "" {
		m.TrustDomain = DefaultTrustDomain
	}
	if m.DataDir == "" {
		m.DataDir = DefaultDataDir
	}
	if m.Control.Listen == "" {
		m.Control.Listen = DefaultControlListen
	}
	if m.Dashboard.Listen == "" {
		m.Dashboard.Listen = DefaultDashboardListen
	}
	if m.Policies == "" {
		m.Policies = DefaultPoliciesDir
	}
	for i := range m.Services {
		s := &m.Services[i]
		if s.Namespace == "" {
			s.Namespace = DefaultNamespace
		}
		if s.Protocol == "" {
			s.Protocol = DefaultServiceProtocol
		}
	}
}

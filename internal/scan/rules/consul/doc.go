// Package consul holds the scanner's Consul rules: intentions (L4 and L7,
// wildcard sources and destinations), ACL default policy, TLS verification
// in agent config, mutual TLS mode in proxy/service defaults, the mesh
// config entry's transparent proxy egress, leaf certificate TTL, and
// connect-inject opt-outs and port exclusions.
package consul

package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Config says what one namespace's capture rules redirect and what they leave
// alone. The zero value is invalid: InboundPort, OutboundPort and ProxyUID
// are required, so capture is never installed half-specified.
type Config struct {
	// InboundPort is the sidecar's mTLS inbound listener: inbound TCP to the
	// app's ports is redirected here. It is never redirected itself.
	InboundPort int
	// OutboundPort is the sidecar's outbound capture listener: outbound TCP
	// from anyone but the proxy's user is redirected here.
	OutboundPort int
	// AdminPort is the sidecar's admin port (metrics, health); 0 if none.
	// Inbound traffic to it is never redirected.
	AdminPort int
	// ProxyUID is the user the sidecar runs as. Its traffic is exempt from
	// outbound capture, so the app must never run as it. Must not be 0: that
	// would exempt every root process.
	ProxyUID int
	// ProxyGID, if not 0, exempts the sidecar's group too (as Istio does).
	ProxyGID int
	// InboundPorts are the app ports whose inbound TCP is redirected; empty
	// means every TCP port except the ones left alone below.
	InboundPorts []int
	// ExcludeInboundPorts are destination ports whose inbound TCP is left alone.
	ExcludeInboundPorts []int
	// ExcludeOutboundPorts are destination ports whose outbound TCP is left alone.
	ExcludeOutboundPorts []int
	// ExcludeInboundCIDRs are source networks whose inbound traffic is left alone.
	ExcludeInboundCIDRs []netip.Prefix
	// ExcludeOutboundCIDRs are destination networks whose outbound traffic is
	// left alone.
	ExcludeOutboundCIDRs []netip.Prefix
}

// FieldError is an invalid Config field. Field is the Config field's name.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("capture config: %s %s: %s", e.Field, e.Value, e.Reason)
}

const maxUID = 1<<32 - 2 // (uid_t)-1 means "no change" to the kernel

// Validate reports the first invalid field as a *FieldError.
func (c Config) Validate() error {
	bad := func(field string, value any, reason string) error {
		return &FieldError{Field: field, Value: fmt.Sprint(value), Reason: reason}
	}
	for _, f := range []struct {
		name     string
		port     int
		optional bool
	}{{"InboundPort", c.InboundPort, false}, {"OutboundPort", c.OutboundPort, false}, {"AdminPort", c.AdminPort, true}} {
		if f.optional && f.port == 0 {
			continue
		}
		if f.port < 1 || f.port > 65535 {
			return bad(f.name, f.port, "must be a port number 1-65535")
		}
	}
	if c.InboundPort == c.OutboundPort {
		return bad("OutboundPort", c.OutboundPort, "must differ from InboundPort")
	}
	if c.AdminPort == c.InboundPort || c.AdminPort == c.OutboundPort {
		return bad("AdminPort", c.AdminPort, "must differ from InboundPort and OutboundPort")
	}
	if c.ProxyUID == 0 {
		return bad("ProxyUID", c.ProxyUID, "must not be 0: exempting root would exempt every root process, and the sidecar must run as its own user")
	}
	if c.ProxyUID < 0 || c.ProxyUID > maxUID {
		return bad("ProxyUID", c.ProxyUID, "must be a user ID 1-4294967294")
	}
	if c.ProxyGID < 0 || c.ProxyGID > maxUID {
		return bad("ProxyGID", c.ProxyGID, "must be a group ID 1-4294967294, or 0 for none")
	}
	for _, l := range []struct {
		name  string
		ports []int
	}{{"InboundPorts", c.InboundPorts}, {"ExcludeInboundPorts", c.ExcludeInboundPorts}, {"ExcludeOutboundPorts", c.ExcludeOutboundPorts}} {
		for _, p := range l.ports {
			if p < 1 || p > 65535 {
				return bad(l.name, p, "must be a port number 1-65535")
			}
		}
	}
	for _, p := range c.InboundPorts {
		switch {
		case p == c.InboundPort || p == c.AdminPort:
			return bad("InboundPorts", p, "is a port of the sidecar itself, which is never redirected")
		case slices.Contains(c.ExcludeInboundPorts, p):
			return bad("InboundPorts", p, "is also in ExcludeInboundPorts")
		}
	}
	if slices.Contains(c.ExcludeOutboundPorts, c.OutboundPort) {
		// Harmless but a sign of confusion: the capture port is the target,
		// not a destination apps use.
		return bad("ExcludeOutboundPorts", c.OutboundPort, "is the outbound capture port itself")
	}
	for _, l := range []struct {
		name  string
		cidrs []netip.Prefix
	}{{"ExcludeInboundCIDRs", c.ExcludeInboundCIDRs}, {"ExcludeOutboundCIDRs", c.ExcludeOutboundCIDRs}} {
		for _, p := range l.cidrs {
			switch {
			case !p.IsValid():
				return bad(l.name, p, "is not a CIDR")
			case !p.Addr().Is4():
				return bad(l.name, p, "must be IPv4: IPv6 is not captured yet")
			case p.Masked() != p:
				return bad(l.name, p, fmt.Sprintf("has host bits set; the network is %s", p.Masked()))
			case p.Bits() == 0:
				return bad(l.name, p, "excludes every address, which turns capture off")
			}
		}
	}
	return nil
}

// ParsePorts parses "80,443,8080" style lists for field; an empty string is
// an empty list. The CLI and a Kubernetes init step share it.
func ParsePorts(field string, list []string) ([]int, error) {
	var ports []int
	for _, s := range list {
		p, err := strconv.Atoi(s)
		if err != nil || strconv.Itoa(p) != s || p < 1 || p > 65535 {
			return nil, &FieldError{Field: field, Value: s, Reason: "must be a port number 1-65535"}
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// ParseCIDRs parses CIDRs for field.
func ParseCIDRs(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, &FieldError{Field: field, Value: s, Reason: "is not a CIDR such as 10.0.0.0/8"}
		}
		out = append(out, p)
	}
	return out, nil
}

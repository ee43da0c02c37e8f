package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Target is the endpoint to probe: a host (DNS name or IP address) and a TCP
// port.
type Target struct {
	Host string
	Port uint16
}

// String formats the target as HOST:PORT, with IPv6 addresses in brackets.
func (t Target) String() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
}

// serverName is the TLS SNI to send: the host when it is a name, nothing when
// it is an IP address.
func (t Target) serverName() string {
	if _, err := netip.ParseAddr(t.Host); err == nil {
		return ""
	}
	return t.Host
}

// ParseTarget parses HOST:PORT. HOST is a DNS name or an IP address (IPv6 in
// brackets); PORT is a number from 1 to 65535 (service names are not looked
// up).
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("target is empty, want HOST:PORT")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, fmt.Errorf("target %q is not HOST:PORT: %w", s, err)
	}
	if host == "" {
		return Target{}, fmt.Errorf("target %q: host is empty", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || port[0] == '+' || (len(port) > 1 && port[0] == '0') {
		return Target{}, fmt.Errorf("target %q: port %q is not a number from 1 to 65535", s, port)
	}
	if strings.Contains(host, ":") || strings.HasPrefix(s, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Is4In6() {
			return Target{}, fmt.Errorf("target %q: %q is not an IPv6 address", s, host)
		}
		if !strings.HasPrefix(s, "[") {
			return Target{}, fmt.Errorf("target %q: write an IPv6 address in brackets, as [%s]:%s", s, host, port)
		}
		return Target{Host: a.String(), Port: uint16(p)}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return Target{Host: a.String(), Port: uint16(p)}, nil
	}
	if err := checkHostname(host); err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	return Target{Host: strings.ToLower(host), Port: uint16(p)}, nil
}

// checkHostname accepts DNS names made of letters, digits, '-' and '_' labels
// separated by dots (one trailing dot allowed).
func checkHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %q is not a DNS name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q has an empty or over-long label", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: label %q starts or ends with '-'", h, label)
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
			if !ok {
				return fmt.Errorf("host %q: character %q is not allowed in a DNS name", h, r)
			}
		}
	}
	return nil
}

package config

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// HTTPVersionUpgrade reports whether an Upgrade protocol name (RFC 9110
// 7.8, without its version) switches to another HTTP version: h2c, h2 or
// HTTP/x. The sidecar always refuses those (the requests inside would pass
// no policy), so no service can allow them.
func HTTPVersionUpgrade(name string) bool {
	return strings.EqualFold(name, "h2c") || strings.EqualFold(name, "h2") || strings.EqualFold(name, "http")
}

// ValidUpgrade checks a protocol name a service allows in Upgrade
// (allowUpgrades): an HTTP token without a version, and not an HTTP
// version upgrade.
func ValidUpgrade(name string) error {
	if name == "" {
		return errors.New("empty protocol name")
	}
	for _, c := range name {
		if !httpguts.IsTokenRune(c) || c == '/' {
			return fmt.Errorf("%q is not a protocol name (an HTTP token such as websocket or tcp, without a version)", name)
		}
	}
	if HTTPVersionUpgrade(name) {
		return fmt.Errorf("%q cannot be allowed: the requests inside an HTTP/2 upgrade would pass no policy", name)
	}
	return nil
}

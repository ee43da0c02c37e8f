package policy

import (
	"errors"
	"strings"
)

// NormalizePath is a placeholder (the policy issue replaces it): it returns
// the normalized form of an HTTP request path, or an error when the path is
// ambiguous and must be rejected with 400.
func NormalizePath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", errors.New("path must start with /")
	}
	return p, nil
}

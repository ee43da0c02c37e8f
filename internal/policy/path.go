package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrAmbiguousPath is wrapped by every NormalizePath error: the path cannot
// be normalized without guessing how the application would read it, so the
// sidecar rejects the request with 400 instead of matching it.
var ErrAmbiguousPath = errors.New("ambiguous request path")

// NormalizePath returns the canonical form of an HTTP request path, the form
// policies match and the sidecar forwards to the application, or an error
// wrapping ErrAmbiguousPath when the request must be rejected with 400.
//
// The input is the path as it came on the wire, still percent-encoded (for a
// net/http request: r.URL.EscapedPath(), or r.RequestURI for origin-form
// requests). A '?' ends the path: the query string is not part of it and is
// dropped from the result (keep r.URL.RawQuery separately).
//
// Normalization, in this order:
//   - percent-encoded unreserved characters (ALPHA, DIGIT, "-._~") are
//     decoded, every other percent-encoding is kept with upper-case hex, and
//     characters that are not allowed raw in a path are percent-encoded;
//   - duplicate slashes are merged;
//   - "." and ".." segments are removed (RFC 3986 section 5.2.4); ".." never
//     climbs above the root.
//
// Rejected (ambiguous): a path not starting with '/', an encoded '/' or '\'
// (%2F, %5C), a raw backslash, NUL and other control characters (raw or
// encoded), malformed or double percent-encodings (%252e), bytes that do not decode to valid
// UTF-8 (overlong encodings included), a fragment ('#'), and ';' path
// parameters (servers disagree on whether "..;" is a dot-segment).
//
// NormalizePath is idempotent: normalizing its output returns it unchanged.
func NormalizePath(p string) (string, error) {
	return normalizePath(p, false)
}

// normalizePath is NormalizePath; allowSemicolon is the MeshConfig's
// pathNormalization: permissive, which lets ';' through unchanged.
func normalizePath(p string, allowSemicolon bool) (string, error) {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" || p[0] != '/' {
		return "", pathErr(p, "must start with /")
	}
	if canonicalPath(p, allowSemicolon) {
		return p, nil
	}

	// Pass 1: canonical escaping, byte by byte.
	var b strings.Builder
	b.Grow(len(p) + 8)
	decoded := make([]byte, 0, len(p)) // the bytes the application will see, for the UTF-8 check
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", pathErr(p, "malformed percent-encoding")
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case d == '/' || d == '\\':
				return "", pathErr(p, "encoded '/' or '\\' (%2F, %5C)")
			case d < 0x20 || d == 0x7f:
				return "", pathErr(p, "encoded control character or NUL")
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				writeEscaped(&b, d)
			}
			decoded = append(decoded, d)
		case c == '\\':
			return "", pathErr(p, "backslash")
		case c < 0x20 || c == 0x7f:
			return "", pathErr(p, "control character or NUL")
		case c == '#':
			return "", pathErr(p, "fragment ('#')")
		case c == ';' && !allowSemicolon:
			return "", pathErr(p, "';' path parameter")
		case c == '/' || isPchar(c) || (c == ';' && allowSemicolon):
			b.WriteByte(c)
			decoded = append(decoded, c)
		default: // space, quotes, brackets and non-ASCII bytes: escape
			writeEscaped(&b, c)
			decoded = append(decoded, c)
		}
	}
	if !utf8.Valid(decoded) {
		return "", pathErr(p, "invalid UTF-8")
	}

	esc := b.String()
	for i := strings.Index(esc, "%25"); i >= 0; i = strings.Index(esc, "%25") {
		if i+4 < len(esc) && isHex(esc[i+3]) && isHex(esc[i+4]) {
			return "", pathErr(p, "double percent-encoding")
		}
		esc = esc[i+3:]
	}

	// Pass 2: merge slashes and remove dot-segments.
	segs := strings.Split(b.String()[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	if len(out) == 0 {
		return "/", nil
	}
	res := "/" + strings.Join(out, "/")
	if trailing {
		res += "/"
	}
	return res, nil
}

// canonicalPath reports whether p is already in canonical form, so the
// common case returns without allocating.
func canonicalPath(p string, allowSemicolon bool) bool {
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			switch c := p[i]; {
			case c == '/':
				// a segment ends here: checked below
			case isPchar(c) || (c == ';' && allowSemicolon):
				continue
			default:
				return false // '%', '\\', controls, non-ASCII...
			}
		}
		seg := p[segStart:i]
		if i < len(p) && seg == "" { // "//": empty segment not at the end
			return false
		}
		if seg == "." || seg == ".." {
			return false
		}
		segStart = i + 1
	}
	return true
}

func pathErr(p, why string) error {
	const maxShown = 80
	if len(p) > maxShown {
		p = p[:maxShown] + "..."
	}
	return fmt.Errorf("%w %q: %s", ErrAmbiguousPath, p, why)
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPchar reports whether c may appear raw in a canonical path segment:
// unreserved, sub-delims except ';', ':' and '@' (RFC 3986 pchar).
func isPchar(c byte) bool {
	if isUnreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', ':', '@':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func writeEscaped(b *strings.Builder, c byte) {
	const hexUpper = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hexUpper[c>>4])
	b.WriteByte(hexUpper[c&15])
}

package observe

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s made safe to show: valid UTF-8 with no control or
// other non-printing characters. A byte that is not part of valid UTF-8 is
// written as \xHH (so "/%ff" decoded shows as `/\xff`), an ASCII control
// character as \xHH, and any other rune unicode.IsPrint refuses (C1
// controls, format characters such as bidi overrides and zero-width
// spaces, separators other than ' ') as \uHHHH or \UHHHHHHHH, the escapes
// of Go's strconv.Quote. Nothing is dropped, so the audit trail still
// shows what a caller sent.
//
// Every string that comes from the network (a request's method, path,
// host, headers, a TLS server name) passes through Printable before it
// reaches a protobuf message, a log line, a metric label, a terminal or
// the dashboard: protobuf refuses to marshal a string that is not UTF-8,
// Prometheus panics on such a label, and a terminal obeys control
// characters. A string that is already printable is returned as it is,
// without copying, and Printable(Printable(s)) == Printable(s).
//
// A backslash is not escaped: `\xff` in the output may also be those four
// characters as sent. Printable is for showing a string, not for
// recovering its bytes.
func Printable(s string) string {
	i := firstUnprintable(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeHex(&b, `\x`, uint32(s[i]), 2)
		case r < utf8.RuneSelf && !printableASCII(s[i]):
			writeHex(&b, `\x`, uint32(r), 2)
		case r >= utf8.RuneSelf && !unicode.IsPrint(r):
			if r <= 0xffff {
				writeHex(&b, `\u`, uint32(r), 4)
			} else {
				writeHex(&b, `\U`, uint32(r), 8)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// firstUnprintable is the index of the first byte of s that Printable
// rewrites, or -1.
func firstUnprintable(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !printableASCII(c) {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) {
			return i
		}
		i += n
	}
	return -1
}

func printableASCII(c byte) bool { return c >= ' ' && c < 0x7f }

func writeHex(b *strings.Builder, prefix string, v uint32, digits int) {
	const hex = "0123456789abcdef"
	b.WriteString(prefix)
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hex[(v>>uint(shift))&0xf])
	}
}

package observe

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"ascii", "/api/v1", "/api/v1"},
		{"space kept", "a b", "a b"},
		{"valid multibyte", "/caf\u00e9/\u4e16/\U0001f600", "/caf\u00e9/\u4e16/\U0001f600"},
		{"full-width dot kept", "/a\uff0e\uff0e/b", "/a\uff0e\uff0e/b"},
		{"valid replacement char", "\ufffd", "\ufffd"},
		{"backslash kept", `/\xff`, `/\xff`},
		{"lone high byte", "/\xff", `/\xff`},
		{"several", "\x80a\xfe", `\x80a\xfe`},
		{"truncated sequence", "\xe4\xb8", `\xe4\xb8`},
		{"overlong slash", "\xc0\xaf", `\xc0\xaf`},
		{"surrogate", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"valid around invalid", "\u00e9\xff\u00e9", "\u00e9\\xff\u00e9"},
		{"nul", "a\x00b", `a\x00b`},
		{"newline forging a line", "/x\nrequest.deny", `/x\x0arequest.deny`},
		{"terminal escape", "\x1b[2J", `\x1b[2J`},
		{"del", "\x7f", `\x7f`},
		{"c1 control", "\u0085", `\u0085`},
		{"bidi override", "/\u202egnp.exe", `/\u202egnp.exe`},
		{"zero-width space", "/admin\u200b", `/admin\u200b`},
		{"no-break space", "a\u00a0b", `a\u00a0b`},
		{"astral non-printing", "\U000e0001", `\U000e0001`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Printable(tc.in); got != tc.want {
				t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestPrintableDoesNotCopyPrintable(t *testing.T) {
	s := "/api/v1/caf\u00e9"
	if n := testing.AllocsPerRun(100, func() { _ = Printable(s) }); n != 0 {
		t.Errorf("Printable of a printable string allocates %v times, want 0", n)
	}
}

// FuzzPrintable checks Printable's properties, with strconv as the
// independent oracle for what the escapes mean: the output is valid UTF-8
// and only printable runes; a printable input is unchanged; a second pass
// changes nothing; and for an input without backslashes, unescaping the
// output with strconv.UnquoteChar gives the input back byte for byte
// (nothing was dropped or altered).
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "/", "/%ff", "/\xff", "GET", "G\xe9T", "\xc0\xaf", "\ufffd", "\\xff", "a\x00b", "\u202e", "x\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Printable(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q) = %q: not valid UTF-8", s, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("Printable(%q) = %q: holds non-printing %U", s, got, r)
			}
		}
		if printable(s) && got != s {
			t.Fatalf("Printable(%q) = %q: printable input changed", s, got)
		}
		if again := Printable(got); again != got {
			t.Fatalf("Printable not idempotent: %q then %q", got, again)
		}
		if strings.Contains(s, `\`) {
			return
		}
		var back []byte
		for rest := got; rest != ""; {
			v, multibyte, tail, err := strconv.UnquoteChar(rest, 0)
			if err != nil {
				t.Fatalf("Printable(%q) = %q: bad escape at %q: %v", s, got, rest, err)
			}
			if v < utf8.RuneSelf || (!multibyte && v <= 0xff && strings.HasPrefix(rest, `\x`)) {
				back = append(back, byte(v))
			} else {
				back = utf8.AppendRune(back, v)
			}
			rest = tail
		}
		if string(back) != s {
			t.Fatalf("Printable(%q) = %q, which unescapes to %q", s, got, back)
		}
	})
}

// printable is the property's definition, by range over runes: valid
// UTF-8 and every rune printable.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

package policy

import (
	"bufio"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "/", want: "/"},
		{in: "/charge", want: "/charge"},
		{in: "/products/42", want: "/products/42"},
		{in: "/products/", want: "/products/"},
		{in: "//products//42", want: "/products/42"},
		{in: "/a/./b", want: "/a/b"},
		{in: "/a/b/../c", want: "/a/c"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/b/.", want: "/a/b/"},
		{in: "/..", want: "/"},
		{in: "/../../a", want: "/a"},
		{in: "/%61%62c", want: "/abc"},
		{in: "/%7euser", want: "/~user"},
		{in: "/a%2Db", want: "/a-b"},
		{in: "/a%20b", want: "/a%20b"},
		{in: "/a%3fb", want: "/a%3Fb"},
		{in: "/a b", want: "/a%20b"},
		{in: "/caf\u00e9", want: "/caf%C3%A9"},
		{in: "/caf%c3%a9", want: "/caf%C3%A9"},
		{in: "/charge?x=1", want: "/charge"},
		{in: "/a/..?x=/b", want: "/"},
		{in: "/a:b@c!$&'()*+,=", want: "/a:b@c!$&'()*+,="},
		{in: "/%25", want: "/%25"},
		{in: "/%25zz", want: "/%25zz"},
		{in: "", wantErr: true},
		{in: "charge", wantErr: true},
		{in: "/a%2fb", wantErr: true},
		{in: "/a%5Cb", wantErr: true},
		{in: "/a\\b", wantErr: true},
		{in: "/a\x00", wantErr: true},
		{in: "/a%00", wantErr: true},
		{in: "/a#b", wantErr: true},
		{in: "/a;b", wantErr: true},
		{in: "/a%", wantErr: true},
		{in: "/a%4", wantErr: true},
		{in: "/a%4g", wantErr: true},
		{in: "/%c0%af", wantErr: true},
		{in: "/\xff", wantErr: true},
		{in: "/%252e", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			t.Parallel()
			got, err := NormalizePath(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("NormalizePath(%q) = %q, want error", tc.in, got)
				}
				if !errors.Is(err, ErrAmbiguousPath) {
					t.Fatalf("error %v does not wrap ErrAmbiguousPath", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizePath(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizePathPermissiveSemicolon(t *testing.T) {
	t.Parallel()
	got, err := normalizePath("/a;v=1/b", true)
	if err != nil || got != "/a;v=1/b" {
		t.Fatalf("permissive: got %q, %v", got, err)
	}
	if _, err := normalizePath("/a/..;/b", false); err == nil {
		t.Fatal("strict mode accepted ';'")
	}
}

func TestNormalizePathCanonicalNoAlloc(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := NormalizePath("/products/42/reviews"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("canonical path: %v allocs, want 0", allocs)
	}
}

// bypassCorpus reads testdata/pathbypass.txt.
func bypassCorpus(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/pathbypass.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		q, err := strconv.QuotedPrefix(line)
		if err != nil {
			t.Fatalf("pathbypass.txt:%d: %v", n, err)
		}
		s, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("pathbypass.txt:%d: %v", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 40 {
		t.Fatalf("corpus has %d entries, want at least 40", len(out))
	}
	return out
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range bypassCorpus(f) {
		f.Add(s)
	}
	f.Add("/products/42")
	f.Add("/a/b/../c/./d//e/")
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Fatalf("error does not wrap ErrAmbiguousPath: %v", err)
			}
			return
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
			t.Fatalf("%q -> %q: bad slashes", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q: dot-segment left", in, out)
			}
		}
		dec, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("%q -> %q: output does not unescape: %v", in, out, err)
		}
		if !utf8.ValidString(dec) || strings.ContainsAny(dec, "\\\x00") {
			t.Fatalf("%q -> %q: decodes to ambiguous %q", in, out, dec)
		}
		if strings.Count(dec, "/") != strings.Count(out, "/") {
			t.Fatalf("%q -> %q: decoding adds segments", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c >= 0x80 || c <= 0x20 || c == 0x7f {
				t.Fatalf("%q -> %q: raw byte %#x in output", in, out, c)
			}
		}
	})
}

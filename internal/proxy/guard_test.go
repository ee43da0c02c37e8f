package proxy

import (
	"testing"
)

func scanAll(parts ...[]byte) bool {
	g := newGuardConn(nil, nil, nil)
	for _, p := range parts {
		g.scan(p)
	}
	return g.conflict()
}

func TestGuardScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"content-length only", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", false},
		{"chunked only", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"both", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"both, upper case, bare LF", "POST / HTTP/1.1\nCONTENT-LENGTH: 3\nTRANSFER-ENCODING: chunked\n\n", true},
		{"in two different requests", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"second request conflicting", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", true},
		{"names inside a value", "GET / HTTP/1.1\r\nX-A: content-length: 1 transfer-encoding: x\r\n\r\n", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := scanAll([]byte(tc.in)); got != tc.want {
				t.Errorf("conflict = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzGuardScan: the scanner never panics and its verdict does not depend
// on how the bytes were split across reads.
func FuzzGuardScan(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), uint16(17))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := scanAll(in)
		i := int(cut) % (len(in) + 1)
		if split := scanAll(in[:i], in[i:]); split != whole {
			t.Errorf("split at %d: %v, whole: %v", i, split, whole)
		}
		bytewise := make([][]byte, len(in))
		for k := range in {
			bytewise[k] = in[k : k+1]
		}
		if got := scanAll(bytewise...); got != whole {
			t.Errorf("byte by byte: %v, whole: %v", got, whole)
		}
	})
}

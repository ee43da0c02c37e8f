package proxy

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"testing"
)

func TestParseResponseHead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		head   string
		method string
		ok     bool
		want   respHead
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: x\r\n\r\n", "GET", true, respHead{status: 200, length: 5, date: true}},
		{"HTTP/1.1 404\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "GET", true, respHead{status: 404, close: true}},
		{"HTTP/1.1 200 OK\nContent-Length: 1\n\n", "POST", true, respHead{status: 200, length: 1}},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", false, respHead{}},         // no body whatever the length
		{"HTTP/1.1 100 Continue\r\n\r\n", "GET", false, respHead{}},                         // 1xx
		{"HTTP/1.1 204 No Content\r\n\r\n", "GET", false, respHead{}},                       // no body
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", false, respHead{}},          // HTTP/1.0 keep-alive rules
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", false, respHead{}}, // chunked
		{"HTTP/1.1 200 OK\r\n\r\n", "GET", false, respHead{}},                               // until close
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "GET", false, respHead{}},
		{"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", "GET", false, respHead{}},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x-secret\r\n\r\n", "GET", false, respHead{}},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\r\n b\r\n\r\n", "GET", false, respHead{}}, // obs-fold
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-A b: c\r\n\r\n", "GET", false, respHead{}},   // bad name
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\x00b\r\n\r\n", "GET", false, respHead{}},  // NUL
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\rb\r\n\r\n", "GET", false, respHead{}},    // bare CR
		{"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\n", "GET", false, respHead{}},
	}
	for _, tc := range cases {
		got, ok := parseResponseHead([]byte(tc.head), tc.method)
		if ok != tc.ok {
			t.Errorf("%q: ok=%v, want %v", tc.head, ok, tc.ok)
			continue
		}
		if ok {
			tc.want.size = len(tc.head)
			if got != tc.want {
				t.Errorf("%q: %+v, want %+v", tc.head, got, tc.want)
			}
		}
	}
}

// FuzzResponseHead is a differential test: a head the raw path accepts
// must mean to http.ReadResponse what it means to the raw path (status,
// length, close, and the fields copied on).
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\nno\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nTrailer: X\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: \t v \t\r\n\r\nok",
		"HTTP/1.1 200 \xff\r\nContent-Length: 1\r\nX: \x80\xff\r\n\r\n.",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nClose: 1\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data, 0)
		if end < 0 {
			return
		}
		rh, ok := parseResponseHead(data[:end], http.MethodGet)
		if !ok {
			return
		}
		res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("raw path accepts %q, ReadResponse refuses it: %v", data[:end], err)
		}
		if res.StatusCode != rh.status || res.ContentLength != rh.length || res.Close != rh.close || rh.size != end {
			t.Fatalf("%q: raw %+v, ReadResponse status %d length %d close %v", data[:end], rh, res.StatusCode, res.ContentLength, res.Close)
		}
		want := res.Header.Clone()
		removeHopHeaders(want)
		delete(want, "Content-Length")
		got := http.Header{}
		_, rest, _ := cutLine(data[:end])
		for {
			name, value, next, st := nextField(rest)
			if st != fieldOK {
				break
			}
			rest = next
			if !hopField(name) {
				got.Add(string(name), string(value))
			}
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%q: raw fields %v, ReadResponse %v", data[:end], got, want)
		}
	})
}

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// The forwarder's raw response path: a common response head from the
// upstream (the peer sidecar or the app) is validated and copied field by
// field to the caller, without building an http.Response and its header
// map and serializing them again. Anything this validator does not
// accept (1xx, 204, 304, HEAD, HTTP/1.0, chunked or unknown length,
// Connection options other than close/keep-alive, a head larger than the
// read buffer, any byte out of place) takes http.ReadResponse, as before.

// respHead is what the raw path needs of a response head.
type respHead struct {
	size   int // bytes of the head, through its empty line
	status int
	length int64 // Content-Length
	close  bool  // the upstream closes the connection after this response
	date   bool  // the head has a Date field
}

// peekResponseHead reads until a whole response head is buffered in br
// and validates it; ok is false when http.ReadResponse must take it.
// Nothing is consumed.
func peekResponseHead(br *bufio.Reader, method string) (rh respHead, ok bool, err error) {
	head, err := peekHead(br, br.Size())
	if errors.Is(err, errHeadTooBig) {
		return rh, false, nil
	}
	if err != nil {
		return rh, false, err
	}
	rh, ok = parseResponseHead(head, method)
	return rh, ok, nil
}

// parseResponseHead validates h, a response head through its empty line.
func parseResponseHead(h []byte, method string) (rh respHead, ok bool) {
	if method == http.MethodHead {
		return rh, false
	}
	line, rest, found := cutLine(h)
	if !found || len(line) < len("HTTP/1.1 200") || string(line[:9]) != "HTTP/1.1 " {
		return rh, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return rh, false
		}
		rh.status = rh.status*10 + int(c-'0')
	}
	if rh.status < 200 || rh.status > 599 || rh.status == http.StatusNoContent || rh.status == http.StatusNotModified {
		return rh, false
	}
	if len(line) > 12 && (line[12] != ' ' || !validValue(line[13:])) {
		return rh, false
	}
	lengths := 0
	for {
		name, value, next, st := nextField(rest)
		switch st {
		case fieldBad:
			return rh, false
		case fieldEnd:
			rh.size = len(h) - len(next)
			return rh, lengths == 1
		}
		rest = next
		switch {
		case asciiEqualFold(name, "content-length"):
			lengths++
			n, ok := parseLength(value)
			if !ok {
				return rh, false
			}
			rh.length = n
		case asciiEqualFold(name, "connection"):
			switch {
			case asciiEqualFold(value, "close"):
				rh.close = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return rh, false // options naming other fields: ReadResponse and removeHopHeaders
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "close"):
			// (A field named like a connection option would be hop-by-hop.)
			return rh, false
		case asciiEqualFold(name, "date"):
			rh.date = true
		}
	}
}

// hopField reports whether a response field is not copied: hop-by-hop
// fields (RFC 9110 7.6.1) and the framing the caller's side sets itself.
func hopField(name []byte) bool {
	switch len(name) {
	case 2:
		return asciiEqualFold(name, "te")
	case 7:
		return asciiEqualFold(name, "trailer") || asciiEqualFold(name, "upgrade")
	case 10:
		return asciiEqualFold(name, "connection") || asciiEqualFold(name, "keep-alive")
	case 14:
		return asciiEqualFold(name, "content-length")
	case 16:
		return asciiEqualFold(name, "proxy-connection")
	case 17:
		return asciiEqualFold(name, "transfer-encoding")
	case 18:
		return asciiEqualFold(name, "proxy-authenticate")
	case 19:
		return asciiEqualFold(name, "proxy-authorization")
	}
	return false
}

const (
	fieldOK = iota
	fieldEnd
	fieldBad
)

// nextField parses the header field at the start of h: a token name, a
// colon, a value without control characters (obs-fold is refused).
func nextField(h []byte) (name, value, rest []byte, st int) {
	line, rest, found := cutLine(h)
	if !found {
		return nil, nil, nil, fieldBad
	}
	if len(line) == 0 {
		return nil, nil, rest, fieldEnd
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, nil, fieldBad
	}
	name = line[:colon]
	for _, c := range name {
		if !httpguts.IsTokenRune(rune(c)) {
			return nil, nil, nil, fieldBad
		}
	}
	value = bytes.Trim(line[colon+1:], " \t")
	if !validValue(value) {
		return nil, nil, nil, fieldBad
	}
	return name, value, rest, fieldOK
}

// cutLine splits off the first line (CRLF or LF); a CR elsewhere is not
// part of a valid line and fails validValue.
func cutLine(h []byte) (line, rest []byte, found bool) {
	i := bytes.IndexByte(h, '\n')
	if i < 0 {
		return nil, h, false
	}
	line = h[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, h[i+1:], true
}

// validValue: field-content (RFC 9110 5.5): visible characters, obs-text,
// spaces and tabs; no other control characters.
func validValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: 1 to 18 ASCII digits.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

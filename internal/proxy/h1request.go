package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// The fast loop's request parser. For the request heads it accepts, it
// builds the *http.Request that http.ReadRequest would (FuzzParseRequest
// checks that, field by field), in three allocations instead of about
// ten, without the textproto machinery: the head as one string that
// every field is a substring of, the header map, and one block holding
// the request, its URL, its body reader and the first header values.
// What it declines (percent-escapes or other characters url.URL would
// rewrite in the path, bytes outside printable ASCII, a Host that is not
// valid, fields net/http treats specially: Pragma, Trailer) takes
// http.ReadRequest, as before; it judges nothing on its own.
//
// The loop gives the block and the header map of a request back for the
// next one on the connection (spare) when the request's exchange went
// through meshward's forwarder alone (requestDone): nothing else can then
// hold them. At 1,000 rps that is most of the ~1 KB a request allocates,
// and with it most of the garbage collections, each of which delays the
// requests it meets by about a millisecond on a one-core sidecar. Strings
// are never reused: every request has its own copy of its head, so a
// string kept from a request (a log line, an event) stays what it was.

// fastRequest is the one allocation behind a parsed request.
type fastRequest struct {
	req    http.Request
	url    url.URL
	body   fastBody
	vals   [12]string  // the values of the first fields (more get their own)
	hdr    http.Header // req.Header as parsed (a handler may replace req.Header)
	fields int         // how many fields the head had
}

// maxSpareFields bounds the header map a connection keeps for its next
// request: a map keeps the room it once grew to.
const maxSpareFields = 16

// recycle empties fr for the connection's next request, so that nothing
// of this one stays, not even while the connection idles; false means its
// header map is too big to keep.
func (fr *fastRequest) recycle() bool {
	if fr.fields > maxSpareFields {
		return false
	}
	h := fr.hdr
	clear(h)
	*fr = fastRequest{hdr: h}
	return true
}

// fastBody is the Content-Length body of a fast request, read from the
// connection's buffered reader. A handler may hand it to a goroutine that
// outlives the handler (the HTTP/2 transport writes a request body on its
// own goroutine and closes it from another), so reads are serialized and
// the loop ends the body with finish before it reads the connection again
// or gives its reader back: a read in flight is waited out, and later
// reads fail instead of reading another request's bytes.
type fastBody struct {
	mu     sync.Mutex
	br     *bufio.Reader
	n      int64
	closed bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	k, err := b.br.Read(p)
	b.n -= int64(k)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// Close stops reads; the loop still skips the unread rest (finish).
func (b *fastBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// finish ends the body for the loop: it waits for a read in flight, then
// with skip discards what nobody read, so that the next request starts
// where it should; false means it could not (the connection must close).
func (b *fastBody) finish(skip bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if !skip || b.n <= 0 {
		return b.n <= 0
	}
	k, err := b.br.Discard(int(b.n))
	b.n -= int64(k)
	return err == nil && b.n == 0
}

// parseRequest parses head (a complete request head that fastHead
// accepted, whose body has bodyLen bytes) into a request (&fr.req) whose
// body reads from br; tmpl carries the context every request of the
// connection gets. spare, if not nil, is an earlier request's block that
// nothing holds any more, emptied by recycle: it is reused. ok false
// means: use http.ReadRequest. The head is not consumed from br.
func parseRequest(tmpl *http.Request, head []byte, bodyLen int, br *bufio.Reader, spare *fastRequest) (fr *fastRequest, ok bool) {
	line, rest, _ := cutLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, false
	}
	method, target := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(target, ' ')
	if sp2 < 0 {
		return nil, false
	}
	minor := 0
	switch string(target[sp2+1:]) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, false
	}
	target = target[:sp2]
	for _, c := range method {
		if !httpguts.IsTokenRune(rune(c)) {
			return nil, false
		}
	}
	// The path must be what url.URL keeps as is (no escapes, nothing it
	// would escape: then RawPath stays empty); the query any printable
	// ASCII, as url.ParseRequestURI keeps it.
	if len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	q := len(target)
	for i, c := range target {
		if c == '?' {
			q = i
			break
		}
		if !pathByte(c) {
			return nil, false
		}
	}
	for _, c := range target[q:] {
		if c <= ' ' || c >= 0x7f {
			return nil, false
		}
	}

	// Count and check the fields before allocating.
	fields, hosts, lengths := 0, 0, 0
	for h := rest; ; fields++ {
		name, _, next, st := nextField(h)
		if st == fieldEnd {
			break
		}
		if st != fieldOK {
			return nil, false
		}
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
		case asciiEqualFold(name, "content-length"):
			lengths++
		case asciiEqualFold(name, "pragma"), asciiEqualFold(name, "trailer"):
			return nil, false // net/http rewrites or interprets these
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"),
			asciiEqualFold(name, "expect"), asciiEqualFold(name, "te"):
			return nil, false // fastHead hands these off; checked again, should a caller not
		}
		h = next
	}
	if hosts != 1 || lengths > 1 || (lengths == 0 && bodyLen != 0) {
		return nil, false
	}

	hs := headString{s: string(head), capHead: cap(head)} // the one copy of the bytes
	var hdr http.Header
	if spare != nil { // emptied by recycle; cleared again all the same
		fr, hdr = spare, spare.hdr
		clear(hdr)
	} else {
		fr, hdr = new(fastRequest), make(http.Header, fields)
	}
	*fr = fastRequest{req: *tmpl, hdr: hdr, fields: fields}
	r := &fr.req
	r.Method = knownMethod(method, &hs)
	r.RequestURI = hs.at(target)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, minor
	if minor == 1 {
		r.Proto = "HTTP/1.1"
	}
	fr.url.Path = r.RequestURI[:q]
	if q < len(target) {
		fr.url.RawQuery = r.RequestURI[q+1:]
		fr.url.ForceQuery = q == len(target)-1 && strings.Count(r.RequestURI, "?") == 1
	}
	r.URL = &fr.url

	r.Header = hdr
	var vals []string
	if fields <= len(fr.vals) {
		vals = fr.vals[:fields:fields]
	} else {
		vals = make([]string, fields)
	}
	for h, i := rest, 0; i < fields; i++ {
		name, value, next, _ := nextField(h)
		key := hs.at(name)
		if !canonicalKey(name) {
			key = http.CanonicalHeaderKey(key)
		}
		vals[i] = hs.at(value)
		if vv, dup := r.Header[key]; dup {
			r.Header[key] = append(vv, vals[i])
		} else {
			r.Header[key] = vals[i : i+1 : i+1]
		}
		h = next
	}
	r.Host = r.Header["Host"][0]
	delete(r.Header, "Host") // as http.ReadRequest does
	if !httpguts.ValidHostHeader(r.Host) {
		return nil, false
	}
	// Keep-alive as net/http decides it (shouldClose).
	conn := r.Header["Connection"]
	r.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	r.ContentLength = int64(bodyLen)
	r.Body = http.NoBody
	if bodyLen > 0 {
		fr.body.br, fr.body.n = br, int64(bodyLen)
		r.Body = &fr.body
	}
	return fr, true
}

// headString is a request head as one string; at maps a piece of the
// head's bytes to the same piece of the string.
type headString struct {
	s       string
	capHead int
}

func (h *headString) at(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	off := h.capHead - cap(b) // b is a piece of the head: they end together
	if off < 0 || off+len(b) > len(h.s) {
		return string(b) // not a piece of it after all: a copy is still right
	}
	return h.s[off : off+len(b)]
}

// pathByte: a byte url.URL keeps as is in a path (RFC 3986 unreserved and
// the sub-delimiters it does not escape there).
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

// knownMethod returns the method's constant when it is a common one (no
// piece of the head to keep alive for it).
func knownMethod(m []byte, hs *headString) string {
	for _, k := range commonMethods {
		if string(m) == k {
			return k
		}
	}
	return hs.at(m)
}

var commonMethods = [...]string{http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch}

// canonicalKey reports whether a token name is already in the form
// http.CanonicalHeaderKey gives it (as clients send the common ones).
func canonicalKey(name []byte) bool {
	upper := true
	for _, c := range name {
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

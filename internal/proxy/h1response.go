package proxy

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Response is the http.ResponseWriter of the fast HTTP/1.1 loop
// (h1server.go). It frames the body as net/http's server would: the
// handler's Content-Length when it set one; else, when the whole body
// (up to pendMax bytes) was written before the handler returned, a
// computed Content-Length; else chunked (HTTP/1.1) or until close
// (HTTP/1.0). Header fields that are not valid on the wire are dropped.
type h1Response struct {
	c      *h1ServerConn
	req    *http.Request
	header http.Header

	status      int
	wroteHeader bool // the status is decided (the head may still be pending)
	headSent    bool // the head is in the write buffer
	noBody      bool // HEAD, 1xx, 204, 304
	length      int64
	written     int64
	chunked     bool
	closeAfter  bool
	trailers    []string // declared in a Trailer header
	pend        []byte   // body held back until its length is known
	err         error
}

// pendMax is how much body is held back to compute a Content-Length
// (net/http's bufferBeforeChunkingSize).
const pendMax = 2048

func (w *h1Response) reset(c *h1ServerConn, req *http.Request) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	pend := w.pend[:0]
	*w = h1Response{c: c, req: req, header: h, length: -1, pend: pend, trailers: w.trailers[:0]}
	w.closeAfter = req.Close
}

func (w *h1Response) Header() http.Header { return w.header }

func (w *h1Response) WriteHeader(code int) {
	if w.wroteHeader || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		panic("meshward: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 && cl[0] != '+' {
			w.length = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if hasToken(w.header["Connection"], "close") {
		w.closeAfter = true
	}
	for _, v := range w.header["Trailer"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = http.CanonicalHeaderKey(strings.TrimSpace(f)); httpguts.ValidHeaderFieldName(f) && httpguts.ValidTrailerHeader(f) {
				w.trailers = append(w.trailers, f)
			}
		}
	}
	if w.length >= 0 || (w.noBody && w.req.Method != http.MethodHead) {
		w.sendHead()
	}
	// Otherwise the head waits: finish or a larger body decides the framing.
}

// writeInformational sends a 1xx (other than 101) at once.
func (w *h1Response) writeInformational(code int) {
	bw := w.c.bw
	writeStatusLine(bw, code)
	w.writeFields()
	_, _ = bw.WriteString("\r\n")
	w.err = bw.Flush()
}

func (w *h1Response) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead && w.length < 0 {
			w.written += int64(len(b))
		}
		return len(b), nil
	}
	if !w.headSent {
		if len(w.pend)+len(b) <= pendMax {
			w.pend = append(w.pend, b...)
			return len(b), nil
		}
		w.commitUnknownLength()
		if w.err != nil {
			return 0, w.err
		}
	}
	return w.writeBody(b)
}

func (w *h1Response) writeBody(b []byte) (int, error) {
	bw := w.c.bw
	if w.length >= 0 {
		if w.written+int64(len(b)) > w.length {
			return 0, http.ErrContentLength
		}
		n, err := bw.Write(b)
		w.written += int64(n)
		w.err = err
		return n, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if w.chunked {
		var tmp [16]byte
		_, _ = bw.Write(strconv.AppendInt(tmp[:0], int64(len(b)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(b)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	w.err = err
	return n, err
}

// commitUnknownLength sends the head for a body whose length is not
// known: chunked for HTTP/1.1, until close for HTTP/1.0.
func (w *h1Response) commitUnknownLength() {
	switch {
	case w.noBody:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true
	}
	w.sendHead()
	if len(w.pend) > 0 {
		p := w.pend
		w.pend = w.pend[:0]
		_, _ = w.writeBody(p)
	}
}

// Flush sends what is buffered; a body of unknown length becomes chunked.
func (w *h1Response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.commitUnknownLength()
	}
	if w.err == nil {
		w.err = w.c.bw.Flush()
	}
}

// finish completes the response after the handler returned; false means
// the connection cannot carry another request.
func (w *h1Response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent && w.hasTrailers() && !w.noBody && w.req.ProtoAtLeast(1, 1) {
		w.commitUnknownLength() // trailers need chunked framing, however short the body
	}
	if !w.headSent {
		if w.req.Method != http.MethodHead || w.written > 0 {
			n := int64(len(w.pend))
			if w.req.Method == http.MethodHead {
				n = w.written
			}
			w.length = n
		}
		w.sendHead()
		if len(w.pend) > 0 {
			_, _ = w.writeBody(w.pend)
		}
	}
	bw := w.c.bw
	if w.chunked && w.err == nil {
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = bw.Flush()
	}
	if w.err != nil {
		return false
	}
	if !w.noBody && w.length >= 0 && w.written < w.length {
		return false // short body: only closing tells the client
	}
	return true
}

// sendHead writes the status line and the header fields.
func (w *h1Response) sendHead() {
	w.headSent = true
	writeStatusLine(w.c.bw, w.status)
	w.writeFields()
	_, date := w.header["Date"]
	w.endHead(date)
}

// writeRawHead sends a validated upstream response head (h1head.go) with
// a Content-Length body: its fields are copied as they are, except the
// hop-by-hop ones.
func (w *h1Response) writeRawHead(rh *respHead, head []byte) {
	w.wroteHeader, w.headSent, w.status, w.length = true, true, rh.status, rh.length
	bw := w.c.bw
	writeStatusLine(bw, rh.status)
	w.writeFields() // set by the handler, if any
	_, rest, _ := cutLine(head)
	for {
		name, value, next, st := nextField(rest)
		if st != fieldOK {
			break
		}
		rest = next
		if hopField(name) {
			continue
		}
		_, _ = bw.Write(name)
		_, _ = bw.WriteString(": ")
		_, _ = bw.Write(value)
		_, _ = bw.WriteString("\r\n")
	}
	w.endHead(rh.date)
}

// endHead writes the framing and connection fields, Date when the head
// has none, and the empty line.
func (w *h1Response) endHead(date bool) {
	bw := w.c.bw
	switch {
	case w.length >= 0 && (!w.noBody || w.req.Method == http.MethodHead):
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.length, 10))
		_, _ = bw.WriteString("\r\n")
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.length < 0 && !w.chunked && !w.noBody {
		w.closeAfter = true
	}
	if w.c.s.closing.Load() {
		w.closeAfter = true
	}
	switch {
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case !w.req.ProtoAtLeast(1, 1):
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	if !date {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes the handler's header fields except the ones the
// framing decides and those not valid on the wire.
func (w *h1Response) writeFields() {
	bw := w.c.bw
	for k, vv := range w.header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	if w.chunked && len(w.trailers) > 0 {
		_, _ = bw.WriteString("Trailer: ")
		_, _ = bw.WriteString(strings.Join(w.trailers, ", "))
		_, _ = bw.WriteString("\r\n")
	}
}

// hasTrailers reports whether the handler declared or set trailers.
func (w *h1Response) hasTrailers() bool {
	if len(w.trailers) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeTrailers ends a chunked body with the declared trailers and those
// set with http.TrailerPrefix.
func (w *h1Response) writeTrailers() {
	bw := w.c.bw
	put := func(k string, vv []string) {
		if !httpguts.ValidHeaderFieldName(k) {
			return
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				_, _ = bw.WriteString(k + ": " + v + "\r\n")
			}
		}
	}
	for _, k := range w.trailers {
		put(k, w.header[k])
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			put(http.CanonicalHeaderKey(name), vv)
		}
	}
}

func writeStatusLine(bw *bufio.Writer, code int) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	_, _ = bw.WriteString(" ")
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}

// hasToken reports whether a comma-separated header holds token.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// httpDate is the Date header value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateCache{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateCache struct {
	sec int64
	s   string
}

var cachedDate atomic.Pointer[dateCache]

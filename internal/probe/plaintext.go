package probe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// rawProbe is neither TLS (whose first byte is a record type, 20 to 24) nor
// an HTTP request line, so a TLS-only server rejects it at once.
const rawProbe = "MESHWARD-PROBE plaintext\r\n\r\n"

// maxReply bounds what the probe reads from any plaintext answer.
const maxReply = 4096

func httpRequest(t Target) string {
	return "GET / HTTP/1.1\r\nHost: " + t.String() + "\r\nUser-Agent: meshward-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
}

// reply is what a plaintext exchange got back: the first bytes the server
// sent, and how reading ended (io.EOF when the server closed).
type reply struct {
	data []byte
	end  error
}

// exchange sends msg without TLS and reads the server's first answer (up to
// maxReply bytes) or how it ended: close, reset or the timeout. Only a
// failure to connect is an error.
func (p *prober) exchange(ctx context.Context, msg string) (reply, error) {
	conn, err := p.dial(ctx)
	if err != nil {
		return reply{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(p.cfg.Timeout))
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()
	if _, err := io.WriteString(conn, msg); err != nil {
		return reply{end: err}, nil
	}
	buf := make([]byte, maxReply)
	n, end := conn.Read(buf)
	if n > 0 {
		// The rest of a short answer (an HTTP status line and headers often
		// come in one segment, the body in the next): read what is already
		// on its way, without waiting for the full timeout.
		_ = conn.SetReadDeadline(time.Now().Add(min(p.cfg.Timeout, followUp)))
		m, _ := io.ReadFull(conn, buf[n:])
		n += m
	}
	return reply{data: buf[:n], end: end}, nil
}

// followUp bounds the wait for the rest of an answer that has started.
const followUp = 200 * time.Millisecond

// plaintextHTTP sends an HTTP/1.1 request without TLS. A real HTTP answer
// means plaintext is accepted; a 400 that asks for HTTPS/TLS, a redirect to
// https://, an alert, silence or a close mean it is refused.
func (p *prober) plaintextHTTP(ctx context.Context) (Check, error) {
	r, err := p.exchange(ctx, httpRequest(p.cfg.Target))
	if err != nil {
		return Check{}, err
	}
	reply, rerr := r.data, r.end
	if len(reply) == 0 {
		return Check{Detail: "no answer: " + describeErr(rerr)}, nil
	}
	if isTLSRecord(reply) {
		return Check{Detail: "answered with a TLS record (alert), not HTTP"}, nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil)
	if err != nil {
		return Check{Detail: fmt.Sprintf("answered %d bytes that are not an HTTP response", len(reply))}, nil
	}
	body, _ := io.ReadAll(resp.Body) // a prefix of the body at most; errors only mean it was cut
	_ = resp.Body.Close()
	status := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if resp.StatusCode == http.StatusBadRequest && asksForTLS(string(body)) {
		return Check{Detail: "answered " + status + " asking for HTTPS/TLS"}, nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && strings.HasPrefix(strings.ToLower(resp.Header.Get("Location")), "https://") {
		return Check{Detail: "answered " + status + " redirecting to https://"}, nil
	}
	return Check{Accepted: true, Detail: "answered a plaintext HTTP request with " + status}, nil
}

// plaintextRaw sends bytes that are neither TLS nor HTTP. Any answer that is
// not a TLS record or an HTTP error, or holding the connection open, means
// the port speaks plaintext.
func (p *prober) plaintextRaw(ctx context.Context) (Check, error) {
	r, err := p.exchange(ctx, rawProbe)
	if err != nil {
		return Check{}, err
	}
	reply, rerr := r.data, r.end
	switch {
	case len(reply) == 0 && isTimeout(rerr):
		return Check{Accepted: true, Detail: heldOpen(p.cfg.Timeout)}, nil
	case len(reply) == 0:
		return Check{Detail: "no answer: " + describeErr(rerr)}, nil
	case isTLSRecord(reply):
		return Check{Detail: "answered with a TLS record (alert)"}, nil
	}
	if resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode >= 400 {
			return Check{Detail: fmt.Sprintf("answered HTTP %d: an HTTP parser rejected the bytes (see the plaintext HTTP check)", resp.StatusCode)}, nil
		}
	}
	return Check{Accepted: true, Detail: fmt.Sprintf("answered %d bytes of plaintext", len(reply))}, nil
}

func heldOpen(d time.Duration) string {
	return fmt.Sprintf("kept the connection open for %s without a TLS alert", d)
}

// isTLSRecord reports whether b starts like a TLS record: an alert (21) or a
// handshake (22) with a 3.x version.
func isTLSRecord(b []byte) bool {
	return len(b) >= 3 && (b[0] == 21 || b[0] == 22) && b[1] == 3
}

func asksForTLS(body string) bool {
	b := strings.ToLower(body)
	return strings.Contains(b, "https") || strings.Contains(b, "ssl") || strings.Contains(b, "tls")
}

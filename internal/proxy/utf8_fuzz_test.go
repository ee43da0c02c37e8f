package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/mtls"
	"meshward.dev/meshward/internal/mtls/mtlstest"
	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/testpki"
)

// utf8Inbound is a catalog sidecar whose observer keeps every event, and
// whose policy allows frontend GET /ok only.
type utf8Inbound struct {
	ca     *testpki.CA
	p      *Proxy
	ok     *http.Client // frontend over h2: the allowed caller
	mu     sync.Mutex
	events []Event
}

func newUTF8Inbound(t testing.TB) *utf8Inbound {
	t.Helper()
	app := newEchoApp(t, false, nil)
	in := &utf8Inbound{ca: testpki.NewCA(t, td)}
	src := mtlstest.NewSource(in.ca.SVID(t, catalogID), in.ca.Bundle())
	var err error
	in.p, err = New(Config{
		Service: "catalog", Namespace: "default", TrustDomain: spiffeid.RequireTrustDomainFromString(td),
		SVID: src, Bundle: src, InboundAddr: "127.0.0.1:0", AppAddr: app.addr, AppProtocol: ProtocolHTTP,
		Registerer: prometheus.NewRegistry(),
		Observer: func(e *Event) {
			in.mu.Lock()
			in.events = append(in.events, *e)
			in.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	in.p.SetPolicy(deciderFunc(func(r *policy.Request) policy.Decision {
		if r.Source.String() == frontendID && r.HTTP != nil && r.HTTP.Method == http.MethodGet && r.HTTP.Path == "/ok" {
			return policy.Decision{Allow: true, Policy: "utf8", Rule: "ok", Mode: "enforce"}
		}
		return policy.Decision{Policy: "utf8", Rule: "deny-rest", Mode: "enforce"}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := in.p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	in.ok = h2Client(sidecarTLS(t, in.ca, frontendID, mtls.ALPNHTTP2))
	t.Cleanup(in.ok.CloseIdleConnections)
	return in
}

// takeEvents returns the events observed so far and forgets them.
func (in *utf8Inbound) takeEvents() []Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	ev := in.events
	in.events = nil
	return ev
}

// attackTLS is a caller's config (payments: no policy allows it) naming
// sni as the TLS server name.
func (in *utf8Inbound) attackTLS(t testing.TB, alpn, sni string) *tls.Config {
	cfg := sidecarTLS(t, in.ca, paymentsID, alpn).Clone()
	cfg.ServerName = sni
	return cfg
}

// percentAll escapes every byte of s, so the path decodes to exactly s.
func percentAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// h1Attack sends one raw HTTP/1.1 request per target form and reads
// whatever comes back; a handshake the TLS stack refuses is not the
// sidecar's concern.
func (in *utf8Inbound) h1Attack(t testing.TB, method, path, hdr, sni string) {
	for _, target := range []string{"/" + path, "/" + percentAll(path)} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", in.p.InboundAddr().String(), in.attackTLS(t, mtls.ALPNHTTP1, sni))
		if err != nil {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, method+" "+target+" HTTP/1.1\r\nHost: catalog\r\nX-Fuzz: "+hdr+"\r\n\r\n")
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		_ = c.Close()
	}
}

// h2Attack sends the same fields as HEADERS frames (raw and escaped path,
// the header value also as :authority) and reads until both streams end.
func (in *utf8Inbound) h2Attack(t testing.TB, method, path, hdr, sni string) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", in.p.InboundAddr().String(), in.attackTLS(t, mtls.ALPNHTTP2, sni))
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	if fr.WriteSettings() != nil {
		return
	}
	open := map[uint32]bool{}
	for i, fields := range [][][2]string{
		{{":method", method}, {":scheme", "https"}, {":authority", "catalog"}, {":path", "/" + percentAll(path)}, {"x-fuzz", hdr}},
		{{":method", method}, {":scheme", "https"}, {":authority", hdr}, {":path", "/" + path}},
	} {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range fields {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}) != nil {
			return
		}
		open[id] = true
	}
	for len(open) > 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				delete(open, f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				delete(open, f.StreamID)
			}
		case *http2.RSTStreamFrame:
			delete(open, f.StreamID)
		case *http2.GoAwayFrame:
			return
		}
	}
}

// checkEvents asserts every event's strings are valid UTF-8 and that the
// report carrying it as a deny (as the sidecar builds it) marshals.
func checkEvents(t *testing.T, events []Event) {
	t.Helper()
	for _, e := range events {
		rv := reflect.ValueOf(e)
		for i := range rv.NumField() {
			if f := rv.Field(i); f.Kind() == reflect.String && !utf8.ValidString(f.String()) {
				t.Errorf("event %s = %q: not valid UTF-8", rv.Type().Field(i).Name, f.String())
			}
		}
		r := &apiv1.WorkloadReport{Denies: []*apiv1.Deny{{
			Time: e.Time.UnixNano(), Source: e.Source, Destination: e.Destination, Port: int32(e.Port), //nolint:gosec // a TCP port
			Method: e.Method, Path: e.Path, Policy: e.Policy, Rule: e.Rule, Mode: e.Mode,
		}}}
		if _, err := proto.Marshal(r); err != nil {
			t.Errorf("report with event %+v does not marshal: %v", e, err)
		}
	}
}

// FuzzInboundEventsMarshal drives arbitrary bytes in the method, the path
// (raw and percent-encoded, so it decodes to any bytes), a header value
// (and :authority) and the TLS server name through the real inbound
// sidecar over mTLS, on HTTP/1.1 and HTTP/2, from a caller no policy
// allows. Every event the sidecar records must marshal in a deny report
// (a proto3 string must be UTF-8: a report that did not ended the
// sidecar's Watch stream), and the allowed caller is served after each
// input.
func FuzzInboundEventsMarshal(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "\xff", "ok", "catalog"},
		{"GET", "%ff", "\xff\xfe", "catalog"},
		{"G\xe9T", "caf\xe9", "v", "catalog"},
		{"GET", "a\xc0\xafb", "\x80", "\xff.catalog"},
		{"POST", "\xed\xa0\x80", "caf\u00e9", "caf\xe9"},
		{"\xff", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	in := newUTF8Inbound(f)
	f.Fuzz(func(t *testing.T, method, path, hdr, sni string) {
		in.h1Attack(t, method, path, hdr, sni)
		in.h2Attack(t, method, path, hdr, sni)
		res, err := in.ok.Get("https://" + in.p.InboundAddr().String() + "/ok")
		if err != nil {
			t.Fatalf("allowed caller after the attack: %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("allowed caller after the attack: %d, want 200", res.StatusCode)
		}
		checkEvents(t, in.takeEvents())
	})
}

// TestInboundInvalidUTF8Events: the attacks of issue 13 item 1 reach the
// observer as events, denied, with the bytes sent escaped (not dropped).
func TestInboundInvalidUTF8Events(t *testing.T) {
	in := newUTF8Inbound(t)
	in.h1Attack(t, "GET", "\xff", "\xff\xfe", "catalog")
	in.h2Attack(t, "G\xe9T", "\xff", "\xfe", "catalog")
	events := in.takeEvents()
	checkEvents(t, events)
	var paths, methods []string
	for _, e := range events {
		if e.Decision != "deny" {
			t.Errorf("event %+v: want deny", e)
		}
		paths, methods = append(paths, e.Path), append(methods, e.Method)
	}
	for _, want := range []string{`/\xff`} {
		if !containsString(paths, want) {
			t.Errorf("no event with path %s among %q", want, paths)
		}
	}
	t.Logf("methods %q paths %q", methods, paths)
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestEventStringsPrintable keeps Event.printable complete: every string
// field, now and added later, comes out valid UTF-8.
func TestEventStringsPrintable(t *testing.T) {
	t.Parallel()
	var e Event
	rv := reflect.ValueOf(&e).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.String {
			f.SetString("/\xff")
		}
	}
	e.printable()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.String && f.String() != `/\xff` {
			t.Errorf("Event.%s = %q after printable, want %q", rv.Type().Field(i).Name, f.String(), `/\xff`)
		}
	}
}

package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
	"meshward.dev/meshward/internal/identity/session"
	"meshward.dev/meshward/internal/identity/svid"
	wlapi "meshward.dev/meshward/internal/proxy/workloadapi"
)

// pair is two workloads talking mTLS through certificates from their
// sessions: server "api" and client "web".
type pair struct {
	client    *http.Client // keeps its connection alive across rotations
	fresh     *http.Client // a new handshake per request
	url       string
	apiSource *svid.Holder
}

func startPair(t *testing.T, e *testEnv, ctx context.Context) *pair {
	t.Helper()
	apiSession, webSession := e.session("api"), e.session("web")
	for _, s := range []*session.Session{apiSession, webSession} {
		go func() {
			if err := s.Run(ctx); err != nil {
				t.Errorf("session: %v", err)
			}
		}()
	}
	api, web := apiSession.Holder(), webSession.Holder()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := tlsconfig.MTLSServerConfig(api, api, tlsconfig.AuthorizeMemberOf(td))
	srvTLS.MinVersion = tls.VersionTLS13
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}), TLSConfig: srvTLS}
	go func() {
		if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { hs.Close() })
	apiID := spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/api")
	cliTLS := tlsconfig.MTLSClientConfig(web, web, tlsconfig.AuthorizeID(apiID))
	cliTLS.MinVersion = tls.VersionTLS13
	return &pair{
		client:    &http.Client{Transport: &http.Transport{TLSClientConfig: cliTLS}, Timeout: 5 * time.Second},
		fresh:     &http.Client{Transport: &http.Transport{TLSClientConfig: cliTLS, DisableKeepAlives: true}, Timeout: 5 * time.Second},
		url:       "https://" + ln.Addr().String() + "/",
		apiSource: api,
	}
}

func (p *pair) get(c *http.Client) error {
	resp, err := c.Get(p.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("status %d body %q", resp.StatusCode, b)
	}
	return nil
}

// TestRotationUnderUse holds connections open and makes requests while the
// leaf and intermediate certificates rotate several times: no request may
// fail, and a go-spiffe Workload API client sees every new SVID.
func TestRotationUnderUse(t *testing.T) {
	if testing.Short() {
		t.Skip("rotation needs real seconds of certificate lifetime")
	}
	e := startEnv(t, envOpts{workloadTTL: 2 * time.Second, intermediateTTL: 6 * time.Second, adminTTL: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	p := startPair(t, e, ctx)

	// The api workload serves the SPIFFE Workload API; a stock go-spiffe
	// client watches it.
	sock := filepath.Join(t.TempDir(), "api.sock")
	wsrv, err := wlapi.Listen(sock, p.apiSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := wsrv.Run(ctx); err != nil {
			t.Errorf("workload api: %v", err)
		}
	}()
	var mu sync.Mutex
	seen := map[string]bool{}
	w := watcherFunc(func(c *workloadapi.X509Context) {
		mu.Lock()
		defer mu.Unlock()
		seen[identity.SerialHex(c.DefaultSVID().Certificates[0])] = true
	})
	go func() {
		// It returns ctx's error once the test ends; what it saw is in seen.
		_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+sock))
	}()

	intermediates := map[string]bool{}
	var failures, requests int
	deadline := time.Now().Add(30 * time.Second)
	for rot := 0; time.Now().Before(deadline); {
		for _, c := range []*http.Client{p.client, p.fresh} {
			requests++
			if err := p.get(c); err != nil {
				failures++
				t.Errorf("request %d failed: %v", requests, err)
			}
		}
		intermediates[identity.SerialHex(e.ca.Intermediate())] = true
		if requests%40 == 0 && rot < 3 {
			if _, err := e.admin.RotateCA(ctx, &apiv1.RotateCARequest{}); err != nil {
				t.Fatal(err)
			}
			rot++
		}
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 5 && len(intermediates) >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond) // pace the bounded load loop
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests, %d failures, %d SVIDs seen over the Workload API, %d intermediates", requests, failures, len(seen), len(intermediates))
	if len(seen) < 5 {
		t.Fatalf("Workload API delivered %d distinct SVIDs, want at least 5 rotations", len(seen))
	}
	if len(intermediates) < 4 {
		t.Fatalf("saw %d intermediates, want at least 4", len(intermediates))
	}
}

type watcherFunc func(*workloadapi.X509Context)

func (f watcherFunc) OnX509ContextUpdate(c *workloadapi.X509Context) { f(c) }
func (watcherFunc) OnX509ContextWatchError(error)                    {}

// TestRootRotationEndToEnd rotates the root while two workloads keep
// talking: they must never fail, and the rotation must pass every phase and
// end with only the new root in the bundle.
func TestRootRotationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("root rotation waits for real certificates to expire")
	}
	e := startEnv(t, envOpts{workloadTTL: 2 * time.Second, intermediateTTL: 10 * time.Second, adminTTL: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPair(t, e, ctx)
	oldRoot := e.ca.SigningRootFP()
	st, err := e.admin.RotateCA(ctx, &apiv1.RotateCARequest{Root: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != string(ca.PhasePrepare) {
		t.Fatalf("phase after start = %s", st.Phase)
	}
	phases := []string{st.Phase}
	var requests int
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range []*http.Client{p.client, p.fresh} {
			requests++
			if err := p.get(c); err != nil {
				t.Fatalf("request %d failed during phase %s: %v", requests, e.ca.Phase(), err)
			}
		}
		if ph := string(e.ca.Phase()); ph != phases[len(phases)-1] {
			phases = append(phases, ph)
		}
		if e.ca.Phase() == ca.PhaseIdle {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Polling may miss a short phase; the audit trail records each one.
	// The audit line follows the state change; wait for it (bounded).
	for try := 0; try < 50; try++ {
		events, err := ReadAudit(ctx, e.admin, &apiv1.AuditRequest{})
		if err != nil {
			t.Fatal(err)
		}
		phases = []string{"prepare"}
		for _, ev := range events {
			if ev.Action == "ca.rotate" && ev.Subject == "root" && strings.HasPrefix(ev.Detail, "phase ") {
				phases = append(phases, ev.Detail[strings.LastIndex(ev.Detail, " ")+1:])
			}
		}
		if phases[len(phases)-1] == "idle" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d requests through phases %v", requests, phases)
	want := []string{"prepare", "activate", "retire", "idle"}
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Fatalf("phases = %v, want %v", phases, want)
	}
	bundle := e.ca.Bundle()
	if len(bundle) != 1 || identity.Fingerprint(bundle[0]) == oldRoot {
		t.Fatal("the old root is still in the bundle, or the new one is missing")
	}
	// After the old root left, the pair still talks (on new-root certs).
	for i := 0; i < 5; i++ {
		if err := p.get(p.fresh); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
}

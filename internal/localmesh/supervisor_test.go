package localmesh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
)

// fakeAdmin serves a sidecar's /readyz and /endpoints; the endpoint of
// catalog appears only on the fourth poll, as when its sidecar reports
// after the caller's is ready. (A stand-in for the sidecar's admin port,
// whose handlers are tested in internal/sidecar.)
func fakeAdmin(t *testing.T, appearAt int32) (*Service, *atomic.Int32) {
	t.Helper()
	var polls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /endpoints", func(w http.ResponseWriter, _ *http.Request) {
		if polls.Add(1) < appearAt {
			fmt.Fprintln(w, `{"frontend":["127.0.0.1:7000"]}`)
			return
		}
		fmt.Fprintln(w, `{"frontend":["127.0.0.1:7000"],"catalog":["127.0.0.1:7001"]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	svc := &Service{
		Name:      "frontend",
		Admin:     strings.TrimPrefix(srv.URL, "http://"),
		Upstreams: map[string]string{"catalog": "127.0.0.1:9001"},
	}
	return svc, &polls
}

func TestWaitRoutableWaitsForEveryUpstream(t *testing.T) {
	svc, polls := fakeAdmin(t, 4)
	if err := waitRoutable(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	if n := polls.Load(); n != 4 {
		t.Fatalf("waitRoutable returned after %d polls; want 4 (the first with catalog's endpoint)", n)
	}
}

// TestWaitRoutableNamesTheMissingUpstream: the sidecar answers without
// catalog twice, then hangs until the deadline cuts the poll short. The
// error names the upstream that never appeared, not the poll's timeout.
func TestWaitRoutableNamesTheMissingUpstream(t *testing.T) {
	var polls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /endpoints", func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) > 2 {
			<-r.Context().Done()
			return
		}
		fmt.Fprintln(w, `{"frontend":["127.0.0.1:7000"]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	svc := &Service{Name: "frontend", Admin: strings.TrimPrefix(srv.URL, "http://"), Upstreams: map[string]string{"catalog": "127.0.0.1:9001"}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := waitRoutable(ctx, svc)
	if err == nil || err.Error() != "no endpoint for catalog" {
		t.Fatalf("waitRoutable = %v; want \"no endpoint for catalog\"", err)
	}
}

// Every sidecar gets its own admin and inbound port. Ports used to be
// probed and released one at a time, and the kernel handed the same one
// out twice: a sidecar then crash-looped on "address already in use"
// while its neighbour answered its readiness checks.
func TestNewAllocatesDistinctPorts(t *testing.T) {
	mesh := &config.Mesh{Name: "many", TrustDomain: "many.local", DataDir: t.TempDir()}
	for i := range 300 {
		mesh.Services = append(mesh.Services, config.Service{Name: fmt.Sprintf("svc%d", i), Namespace: "default", Port: 20000 + i})
	}
	s, err := New(Config{Mesh: mesh, Executable: "meshward", Sidecar: []string{"meshward-proxy"}, Admin: apiv1.NewControlClient(nil), Out: NewOutput(io.Discard, false)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, svc := range s.services {
		for what, addr := range map[string]string{"admin": svc.Admin, "inbound": svc.Inbound} {
			if prev, dup := seen[addr]; dup {
				t.Fatalf("%s %s of %s is also %s", what, addr, svc.Name, prev)
			}
			seen[addr] = what + " of " + svc.Name
		}
	}
	if len(seen) != 600 {
		t.Fatalf("%d distinct addresses; want 600", len(seen))
	}
}

package session

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/svid"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/testpki"
)

// pushControl is a Watch server that pushes updates and hands on the
// reports it receives.
type pushControl struct {
	apiv1.UnimplementedControlServer
	updates []*apiv1.MeshUpdate
	reports chan *apiv1.WorkloadReport
}

func (p *pushControl) Watch(stream apiv1.Control_WatchServer) error {
	for _, u := range p.updates {
		if err := stream.Send(u); err != nil {
			return err
		}
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case p.reports <- r:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// TestWatchInstallsIntoTheHolder: a bundle pushed on the watch stream goes
// into the holder (a corrupt one is ignored and the held bundle stays),
// renew_now asks for a renewal, every update reaches OnUpdate, and the
// next report carries the roots the holder holds.
func TestWatchInstallsIntoTheHolder(t *testing.T) {
	t.Parallel()
	ca, next := testpki.NewCA(t, "example.org"), testpki.NewCA(t, "example.org")
	ctrl := &pushControl{reports: make(chan *apiv1.WorkloadReport), updates: []*apiv1.MeshUpdate{
		{Bundle: [][]byte{ca.Cert.Raw, next.Cert.Raw}},
		{Bundle: [][]byte{{0x30, 1}}, RenewNow: true},
	}}
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	apiv1.RegisterControlServer(srv, ctrl)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	updates := make(chan *apiv1.MeshUpdate, len(ctrl.updates))
	s := &Session{log: observe.Discard(), ids: svid.New(td, nil), conn: conn,
		renewNow: make(chan struct{}, 1), reportC: make(chan struct{}, 1),
		cfg: Config{ReportInterval: time.Hour, OnUpdate: func(u *apiv1.MeshUpdate) { updates <- u }}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = s.watch(ctx) }()

	for range ctrl.updates {
		select {
		case <-updates:
		case <-ctx.Done():
			t.Fatal("OnUpdate did not get every update")
		}
	}
	want := []string{identity.Fingerprint(ca.Cert), identity.Fingerprint(next.Cert)}
	if got := s.ids.BundleRoots(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("holder's roots %q, want %q (the pushed bundle, the corrupt one ignored)", got, want)
	}
	select {
	case <-s.renewNow:
	default:
		t.Error("renew_now did not ask for a renewal")
	}
	for {
		select {
		case r := <-ctrl.reports:
			if len(r.BundleRoots) == 2 && r.BundleRoots[0] == want[0] && r.BundleRoots[1] == want[1] {
				return
			}
		case <-ctx.Done():
			t.Fatal("no report carried the pushed bundle's roots")
		}
	}
}

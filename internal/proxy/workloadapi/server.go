// Package workloadapi serves the SPIFFE Workload API (X.509 part) on a unix
// socket, so apps that speak SPIFFE fetch their own SVID and bundle from
// their sidecar, and receive a new message on every rotation. One socket
// serves one identity: access is controlled by the socket's file mode
// (0600, in a 0700 directory), so only the app's user can connect.
// JWT-SVIDs are not served (Unimplemented).
package workloadapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/observe"
)

// Source is the sidecar's identity: current SVID and bundle, and a channel
// closed at the next change.
type Source interface {
	x509svid.Source
	x509bundle.Source
	TrustDomain() spiffeid.TrustDomain
	Changed() <-chan struct{}
}

// Server is a Workload API server on one unix socket.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	src  Source
	log  *slog.Logger
	ln   net.Listener
	path string
}

// Listen creates the socket at path (replacing a stale one).
func Listen(path string, src Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = observe.Discard()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("workload api: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("workload api: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("workload api: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("workload api: %w", err)
	}
	return &Server{src: src, log: log, ln: ln, path: path}, nil
}

// Run serves until ctx is cancelled, then removes the socket.
func (s *Server) Run(ctx context.Context) error {
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, s)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(s.ln) }()
	s.log.Info("workload api listening", observe.KeyAddr, "unix://"+s.path)
	select {
	case <-ctx.Done():
		gs.Stop()
		_ = os.Remove(s.path)
		return nil
	case err := <-errc:
		return err
	}
}

// checkHeader enforces the spec's security header, which stops a browser
// or SSRF-style proxy from reaching the API.
func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

// FetchX509SVID implements the Workload API: the current SVID now, and again
// after every rotation.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	for {
		changed := s.src.Changed()
		resp, err := s.svidResponse()
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// FetchX509Bundles implements the Workload API.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	for {
		changed := s.src.Changed()
		b, err := s.src.GetX509BundleForTrustDomain(s.src.TrustDomain())
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		resp := &workload.X509BundlesResponse{Bundles: map[string][]byte{s.src.TrustDomain().IDString(): concatDER(b.X509Authorities())}}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

func (s *Server) svidResponse() (*workload.X509SVIDResponse, error) {
	svid, err := s.src.GetX509SVID()
	if err != nil {
		return nil, err
	}
	b, err := s.src.GetX509BundleForTrustDomain(s.src.TrustDomain())
	if err != nil {
		return nil, err
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, err
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    svid.ID.String(),
		X509Svid:    concatDER(svid.Certificates),
		X509SvidKey: key,
		Bundle:      concatDER(b.X509Authorities()),
	}}}, nil
}

func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

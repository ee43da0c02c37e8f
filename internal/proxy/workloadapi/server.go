// Package workloadapi serves the SPIFFE Workload API (X.509 part) on a unix
// socket, so apps that speak SPIFFE fetch their own SVID and bundle from
// their sidecar, and receive a new message on every rotation. One socket
// serves one identity to one app: the socket is 0600, owned by the app's
// user, and every call is attested from the kernel's credentials of the
// calling process (SO_PEERCRED), as SPIRE's unix workload attestor does:
// see Policy. JWT-SVIDs are not served (Unimplemented).
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
	src      Source
	log      *slog.Logger
	ln       net.Listener
	path     string
	attestor Attestor
}

// Config configures a Server.
type Config struct {
	Path   string
	Source Source
	Logger *slog.Logger
	// UID is the app's user: it owns the socket (which takes root when it
	// is not the sidecar's own) and is the only user served. Attestor
	// decides on every call; nil means NewPolicy(UID, false).
	UID      int
	Attestor Attestor
}

// Listen serves src on path to the sidecar's own user only.
func Listen(path string, src Source, log *slog.Logger) (*Server, error) {
	return New(Config{Path: path, Source: src, Logger: log, UID: os.Geteuid()})
}

// New creates the socket at cfg.Path (replacing a stale one). Its
// directory is 0700, or 0711 when the socket is another user's (that user
// may pass through to its socket, not list the directory).
func New(cfg Config) (*Server, error) {
	log, path := cfg.Logger, cfg.Path
	if log == nil {
		log = observe.Discard()
	}
	if cfg.UID < 0 {
		return nil, fmt.Errorf("workload api: uid %d is not a user ID", cfg.UID)
	}
	attestor := cfg.Attestor
	if attestor == nil {
		attestor = NewPolicy(uint32(cfg.UID), false) //nolint:gosec // checked >= 0 above
	}
	other := cfg.UID != os.Geteuid()
	dirMode := os.FileMode(0o700)
	if other {
		dirMode = 0o711 //nolint:gosec // traverse only: the app's user reaches its own socket
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
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
	if other {
		if err := os.Chmod(filepath.Dir(path), dirMode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("workload api: %w", err)
		}
		if err := os.Chown(path, cfg.UID, -1); err != nil {
			ln.Close()
			return nil, fmt.Errorf("workload api: socket for uid %d: %w", cfg.UID, err)
		}
	}
	return &Server{src: cfg.Source, log: log, ln: ln, path: path, attestor: attestor}, nil
}

// Run serves until ctx is cancelled, then removes the socket.
func (s *Server) Run(ctx context.Context) error {
	gs := grpc.NewServer(grpc.Creds(peerCreds{}))
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

// checkCall enforces the spec's security header, which stops a browser
// or SSRF-style proxy from reaching the API, then attests the caller.
func (s *Server) checkCall(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return s.attest(ctx)
}

// FetchX509SVID implements the Workload API: the current SVID now, and again
// after every rotation.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	if err := s.checkCall(stream.Context()); err != nil {
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
	if err := s.checkCall(stream.Context()); err != nil {
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

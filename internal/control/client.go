package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
)

// AdminClient is a connection to the control plane as the admin identity,
// using the credential the control plane keeps in <data dir>/admin.
type AdminClient struct {
	apiv1.ControlClient
	conn *grpc.ClientConn
}

// DialAdmin connects to the control plane at addr (empty: the address the
// control plane wrote into the data dir) with the admin credential.
func DialAdmin(dataDir, addr string) (*AdminClient, error) {
	dir := filepath.Join(dataDir, AdminDir)
	svid, err := x509svid.Load(filepath.Join(dir, AdminCertFile), filepath.Join(dir, AdminKeyFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "no such file") {
			return nil, fmt.Errorf("no admin credential in %s: start the control plane with this --data-dir first (meshward control or meshward up)", dir)
		}
		return nil, fmt.Errorf("load admin credential from %s: %w", dir, err)
	}
	bundle, err := x509bundle.Load(svid.ID.TrustDomain(), filepath.Join(dir, AdminBundleFile))
	if err != nil {
		return nil, fmt.Errorf("load trust bundle from %s: %w", dir, err)
	}
	if addr == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, AddrFile))
		if err != nil {
			return nil, fmt.Errorf("control plane address unknown: pass --control HOST:PORT (no %s in %s)", AddrFile, dataDir)
		}
		addr = strings.TrimSpace(string(b))
	}
	tc := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(identity.ControlID(svid.ID.TrustDomain())))
	tc.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("dial control plane %s: %w", addr, err)
	}
	return &AdminClient{ControlClient: apiv1.NewControlClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *AdminClient) Close() error { return c.conn.Close() }

// ReadAudit reads the whole Audit stream since req.since (for tests and
// small trails; `meshward audit` prints pages as they arrive).
func ReadAudit(ctx context.Context, c apiv1.ControlClient, req *apiv1.AuditRequest) ([]*apiv1.AuditEvent, error) {
	stream, err := c.Audit(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*apiv1.AuditEvent
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, page.GetEvents()...)
	}
}

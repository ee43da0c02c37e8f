package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"meshward.dev/meshward/internal/observe"
)

// DefaultTimeout bounds each network step (connect, handshake, read) when
// Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// maxTimeout is the largest per-step timeout Validate accepts.
const maxTimeout = 5 * time.Minute

// Config says what to probe and how.
type Config struct {
	Target Target
	// Timeout bounds each connect, handshake and read; DefaultTimeout if zero.
	Timeout time.Duration
	// Bundle, when set, holds the trust anchors the presented chain must
	// verify against; BundleName names its file in the report.
	Bundle     []*x509.Certificate
	BundleName string
	// ClientCert, when set, is an identity (an SVID) to present in one
	// extra handshake, to see whether the endpoint accepts it.
	ClientCert *tls.Certificate
	// Now is the evaluation time for validity and lifetimes; time.Now if nil.
	Now func() time.Time
	// Dial opens TCP connections; a net.Dialer if nil.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Target.Host == "" || c.Target.Port == 0 {
		return errors.New("probe: target HOST:PORT is required")
	}
	if c.Timeout < 0 || c.Timeout > maxTimeout {
		return fmt.Errorf("probe: timeout %s is out of range (0 to %s)", c.Timeout, maxTimeout)
	}
	if c.ClientCert != nil && (len(c.ClientCert.Certificate) == 0 || c.ClientCert.PrivateKey == nil) {
		return errors.New("probe: client certificate needs a certificate and its private key")
	}
	return nil
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Dial == nil {
		d := &net.Dialer{Timeout: out.Timeout}
		out.Dial = d.DialContext
	}
	if out.Logger == nil {
		out.Logger = observe.Discard()
	}
	return out
}

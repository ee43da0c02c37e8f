package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"

	"meshward.dev/meshward/internal/observe"
)

// Run probes cfg.Target and returns what it saw. It fails only when the
// configuration is invalid, ctx ends, or the endpoint cannot be reached at
// all; everything the endpoint does wrong is in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &prober{cfg: cfg.withDefaults()}
	return p.run(ctx)
}

type prober struct {
	cfg Config
}

func (p *prober) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	c, err := p.cfg.Dial(dctx, "tcp", p.cfg.Target.String())
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("probe %s: %w", p.cfg.Target, ctx.Err())
		}
		return nil, fmt.Errorf("probe %s: connect: %s", p.cfg.Target, describeErr(err))
	}
	return c, nil
}

func (p *prober) run(ctx context.Context) (*Result, error) {
	now := p.cfg.Now()
	log := p.cfg.Logger.With(slog.String(observe.KeyAddr, p.cfg.Target.String()))
	res := &Result{
		Target:   p.cfg.Target.String(),
		ProbedAt: now.UTC(),
		Notes:    []string{"SSLv3 and SSLv2 not tested: Go's crypto/tls cannot offer them"},
	}

	// Reachability first: one plain connect, so an unreachable endpoint is
	// an error rather than a report full of refusals.
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	_ = c.Close()

	if res.PlaintextHTTP, err = p.plaintextHTTP(ctx); err != nil {
		return nil, err
	}
	if res.PlaintextRaw, err = p.plaintextRaw(ctx); err != nil {
		return nil, err
	}
	log.Debug("plaintext checked", "http", res.PlaintextHTTP.Accepted, "raw", res.PlaintextRaw.Accepted)

	best := uint16(0)
	var chain [][]byte
	silent := true // every TLS attempt timed out without a byte back
	for _, v := range tlsVersions {
		o, err := p.handshake(ctx, attempt{version: v.id, suites: allSuiteIDs()})
		if err != nil {
			return nil, err
		}
		if o.serverCert || o.handshakeOK || !isTimeout(o.err) {
			silent = false
		}
		ver := Version{Name: v.name, ID: v.id, Accepted: o.serverCert}
		switch {
		case o.handshakeOK:
			ver.Detail = "handshake completed with " + tls.CipherSuiteName(o.state.CipherSuite)
		case o.serverCert:
			ver.Detail = "server sent its certificate, then: " + describeErr(o.err)
		default:
			ver.Detail = describeErr(o.err)
		}
		if o.requested {
			res.ClientCertRequested = true
		}
		if o.serverCert && best == 0 {
			best, chain = v.id, o.chain
		}
		if v.id == tls.VersionTLS13 && o.handshakeOK {
			ver.Suites = []CipherSuite{{Name: tls.CipherSuiteName(o.state.CipherSuite), ID: o.state.CipherSuite}}
		}
		if o.serverCert && v.id < tls.VersionTLS13 {
			if ver.Suites, err = p.suites(ctx, v.id); err != nil {
				return nil, err
			}
		}
		res.Versions = append(res.Versions, ver)
		log.Debug("tls version checked", "version", v.name, "accepted", ver.Accepted)
	}
	res.SpeaksTLS = best != 0
	if silent && res.PlaintextRaw.Accepted && res.PlaintextRaw.Detail == heldOpen(p.cfg.Timeout) {
		// Holding a connection open is plaintext only if the endpoint
		// reacts to something; this one answers nothing at all.
		res.PlaintextRaw = Check{Detail: "no answer to anything (plaintext or TLS) within " + p.cfg.Timeout.String()}
		res.Notes = append(res.Notes, "the endpoint accepted connections but answered nothing; a firewall or an overloaded server?")
	}
	if !res.SpeaksTLS {
		res.NoClientCert = Check{Detail: "no TLS version was accepted"}
		return res, nil
	}

	var parsed []*x509.Certificate
	res.Chain, parsed = describeChain(chain, now)
	if len(p.cfg.Bundle) > 0 {
		bc := &BundleCheck{File: p.cfg.BundleName, Verified: true, Detail: "chain verifies against the bundle"}
		if err := verifyChain(parsed, p.cfg.Bundle, now); err != nil {
			bc.Verified, bc.Detail = false, err.Error()
		}
		res.Bundle = bc
	}

	if res.NoClientCert, err = p.clientAuth(ctx, best, nil); err != nil {
		return nil, err
	}
	if p.cfg.ClientCert != nil {
		chk, err := p.clientAuth(ctx, best, p.cfg.ClientCert)
		if err != nil {
			return nil, err
		}
		res.WithClientCert = &chk
	}
	log.Debug("probe done", "tls", res.SpeaksTLS, "no_client_cert_accepted", res.NoClientCert.Accepted)
	return res, nil
}

// suites tries every suite crypto/tls implements for version, one at a time.
func (p *prober) suites(ctx context.Context, version uint16) ([]CipherSuite, error) {
	var out []CipherSuite
	for _, s := range allSuites() {
		if !supports(s, version) {
			continue
		}
		o, err := p.handshake(ctx, attempt{version: version, suites: []uint16{s.ID}})
		if err != nil {
			return nil, err
		}
		if !o.serverCert {
			continue
		}
		weak, _ := suiteWeakness(s.ID)
		out = append(out, CipherSuite{Name: s.Name, ID: s.ID, Weak: weak})
	}
	return out, nil
}

// allSuiteIDs offers every suite, so a version is not refused for want of a
// (weak) suite the defaults leave out.
func allSuiteIDs() []uint16 {
	var ids []uint16
	for _, s := range allSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

func supports(s *tls.CipherSuite, v uint16) bool {
	for _, x := range s.SupportedVersions {
		if x == v {
			return true
		}
	}
	return false
}

// clientAuth completes a handshake at version presenting cert (none if nil)
// and sends a request, to see whether the server lets that client in.
func (p *prober) clientAuth(ctx context.Context, version uint16, cert *tls.Certificate) (Check, error) {
	o, err := p.handshake(ctx, attempt{version: version, suites: allSuiteIDs(), cert: cert, session: true})
	if err != nil {
		return Check{}, err
	}
	what := "without a client certificate"
	if cert != nil {
		what = "with the client certificate"
	}
	switch {
	case !o.handshakeOK:
		return Check{Detail: "handshake " + what + " refused: " + describeErr(o.err)}, nil
	case !o.requested:
		return Check{Accepted: true, Detail: "handshake completed " + what + "; the server never asked for one"}, nil
	case o.sessionKept:
		return Check{Accepted: true, Detail: "handshake completed " + what + " and the server " + o.sessionDetail}, nil
	default:
		return Check{Detail: "handshake " + what + " completed, then the server " + o.sessionDetail}, nil
	}
}

package session

import (
	"context"
	"crypto/x509"
	"time"

	"golang.org/x/sync/errgroup"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/backoff"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// Backoff bounds for calls to an unreachable control plane.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 15 * time.Second
)

// retryBackoff is the schedule of both loops: doubling from minBackoff to
// maxBackoff, each delay plus up to half of it at random.
func retryBackoff() backoff.Backoff {
	return backoff.Backoff{Min: minBackoff, Max: maxBackoff, Jitter: 0.5}
}

// Run renews the SVID and follows the watch stream until ctx is cancelled.
// Neither a down control plane nor a failed renewal stops it: the current
// SVID keeps serving until it expires.
func (s *Session) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.renewLoop(ctx); return nil })
	g.Go(func() error { s.watchLoop(ctx); return nil })
	return g.Wait()
}

// renewAt is half-way from now (when the SVID arrived) to its expiry, plus
// up to a tenth of that span of jitter so a fleet does not renew in step.
func (s *Session) renewAt() time.Time {
	leaf := s.leaf()
	now := s.cfg.Now()
	left := leaf.NotAfter.Sub(now)
	if left <= 0 {
		return now
	}
	return now.Add(left/2 + jitter(left/10))
}

// leaf is the current SVID's leaf (there is one from bootstrap on).
func (s *Session) leaf() *x509.Certificate {
	v, err := s.ids.GetX509SVID()
	if err != nil {
		panic("session: no SVID after bootstrap")
	}
	return v.Certificates[0]
}

func (s *Session) renewLoop(ctx context.Context) {
	next := s.renewAt()
	retry := retryBackoff()
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.renewNow:
			t.Stop()
		}
		if err := s.renew(ctx); err != nil {
			leaf := s.leaf()
			level := s.log.Warn
			if s.cfg.Now().After(leaf.NotAfter) {
				level = s.log.Error
			}
			level("renewal failed; serving the current SVID", observe.KeyError, err, observe.KeyNotAfter, leaf.NotAfter)
			next = s.cfg.Now().Add(retry.Next())
			continue
		}
		retry.Reset()
		next = s.renewAt()
	}
}

func (s *Session) renew(ctx context.Context) error {
	key, csr, err := identity.NewKeyAndCSR()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := apiv1.NewControlClient(s.conn).Renew(ctx, &apiv1.RenewRequest{Csr: csr})
	if err != nil {
		return err
	}
	if err := s.install(resp, key); err != nil {
		return err
	}
	leaf := s.leaf()
	s.log.Info("renewed SVID", observe.KeySPIFFEID, resp.GetSpiffeId(), observe.KeySerial, identity.SerialHex(leaf), observe.KeyNotAfter, leaf.NotAfter)
	return nil
}

func (s *Session) watchLoop(ctx context.Context) {
	retry := retryBackoff()
	for ctx.Err() == nil {
		start := time.Now()
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxBackoff {
			retry.Reset()
		}
		s.log.Warn("watch stream to control plane lost; serving cached state", observe.KeyError, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry.Next()):
		}
	}
}

func (s *Session) watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := apiv1.NewControlClient(s.conn).Watch(ctx)
	if err != nil {
		return err
	}
	s.sessions.Add(1)
	sendErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(s.cfg.ReportInterval)
		defer tick.Stop()
		for {
			r := s.report()
			if err := stream.Send(r); err != nil {
				// The stream broke (a report that would not marshal
				// cannot get here: report made it marshal). Its denies
				// go out with the next stream's first report.
				if s.cfg.Unsent != nil {
					s.cfg.Unsent(r)
				}
				sendErr <- err
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-s.reportC:
			}
		}
	}()
	for {
		u, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case err := <-sendErr:
			return err
		default:
		}
		if err := s.setBundle(u.GetBundle()); err != nil {
			s.log.Warn("bad bundle from control plane ignored", observe.KeyError, err)
		}
		if u.GetRenewNow() {
			s.RenewNow()
		}
		if s.cfg.OnUpdate != nil {
			s.cfg.OnUpdate(u)
		}
		s.kickReport()
	}
}

// WatchSessions is how many Watch streams the session has opened to the
// control plane: it rises by one on every reconnect.
func (s *Session) WatchSessions() int64 { return s.sessions.Load() }

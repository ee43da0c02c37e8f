package source

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// Backoff bounds for calls to an unreachable control plane.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 15 * time.Second
)

// Run renews the SVID and follows the watch stream until ctx is cancelled.
// Neither a down control plane nor a failed renewal stops it: the current
// SVID keeps serving until it expires.
func (s *Source) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.renewLoop(ctx); return nil })
	g.Go(func() error { s.watchLoop(ctx); return nil })
	return g.Wait()
}

// renewAt is half-way from now (when the SVID arrived) to its expiry, plus
// up to a tenth of that span of jitter so a fleet does not renew in step.
func (s *Source) renewAt() time.Time {
	leaf := s.svid.Load().Certificates[0]
	now := s.cfg.Now()
	left := leaf.NotAfter.Sub(now)
	if left <= 0 {
		return now
	}
	return now.Add(left/2 + jitter(left/10))
}

func (s *Source) renewLoop(ctx context.Context) {
	next := s.renewAt()
	backoff := minBackoff
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
			leaf := s.svid.Load().Certificates[0]
			level := s.log.Warn
			if s.cfg.Now().After(leaf.NotAfter) {
				level = s.log.Error
			}
			level("renewal failed; serving the current SVID", observe.KeyError, err, observe.KeyNotAfter, leaf.NotAfter)
			next = s.cfg.Now().Add(backoff + jitter(backoff/2))
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		next = s.renewAt()
	}
}

func (s *Source) renew(ctx context.Context) error {
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
	leaf := s.svid.Load().Certificates[0]
	s.log.Info("renewed SVID", observe.KeySPIFFEID, resp.GetSpiffeId(), observe.KeySerial, identity.SerialHex(leaf), observe.KeyNotAfter, leaf.NotAfter)
	return nil
}

func (s *Source) watchLoop(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		s.log.Warn("watch stream to control plane lost; serving cached state", observe.KeyError, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + jitter(backoff/2)):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func (s *Source) watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := apiv1.NewControlClient(s.conn).Watch(ctx)
	if err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(s.cfg.ReportInterval)
		defer tick.Stop()
		for {
			if err := stream.Send(s.report()); err != nil {
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

// report is what the workload holds now.
func (s *Source) report() *apiv1.WorkloadReport {
	r := &apiv1.WorkloadReport{}
	if s.cfg.Report != nil {
		r = proto.Clone(s.cfg.Report()).(*apiv1.WorkloadReport)
	}
	if b := s.bundle.Load(); b != nil {
		for _, c := range b.X509Authorities() {
			r.BundleRoots = append(r.BundleRoots, identity.Fingerprint(c))
		}
	}
	if v := s.svid.Load(); v != nil {
		leaf := v.Certificates[0]
		r.SpiffeId = v.ID.String()
		r.SvidSerial = identity.SerialHex(leaf)
		r.SvidNotAfter = leaf.NotAfter.Unix()
		r.SvidRoot, _ = s.svidRoot.Load().(string)
	}
	return r
}

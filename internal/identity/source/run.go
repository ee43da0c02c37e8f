package source

import (
	"context"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

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
			leaf := s.svid.Load().Certificates[0]
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

func (s *Source) watch(ctx context.Context) error {
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
	s.marshalable(r)
	return r
}

// marshalable makes r safe to send: gRPC ends the whole stream when a
// message fails to marshal, and a proto3 string must be valid UTF-8. A
// string that is not (a caller's bytes the proxy did not escape) is
// escaped with observe.Printable; should r still not marshal, each deny
// that does not is dropped and counted in DeniesDropped. Either is
// counted and logged; neither ends the stream.
func (s *Source) marshalable(r *apiv1.WorkloadReport) {
	if n := printableStrings(r.ProtoReflect()); n > 0 {
		s.escaped.Add(int64(n))
		s.log.Warn("report held strings that are not UTF-8; sent escaped", "strings", n)
	}
	if _, err := proto.Marshal(r); err == nil {
		return
	}
	kept := r.Denies[:0]
	for _, d := range r.Denies {
		if _, err := proto.Marshal(d); err != nil {
			s.unmarshalable.Add(1)
			s.log.Error("deny that does not marshal dropped from report", observe.KeyError, err)
			r.DeniesDropped++
			continue
		}
		kept = append(kept, d)
	}
	r.Denies = kept
}

// ReportStringsEscaped is how many strings the reports carried escaped,
// and ReportDeniesUnmarshalable how many denies were dropped because they
// would not marshal even then (both should stay 0: the proxy escapes what
// it records).
func (s *Source) ReportStringsEscaped() int64      { return s.escaped.Load() }
func (s *Source) ReportDeniesUnmarshalable() int64 { return s.unmarshalable.Load() }

// printableStrings replaces every string in m (nested messages, lists and
// maps included) that is not valid UTF-8 with its observe.Printable form,
// and returns how many it replaced. Valid strings are left as they are.
func printableStrings(m protoreflect.Message) (n int) {
	fix := func(v protoreflect.Value) (protoreflect.Value, bool) {
		if str := v.String(); !utf8.ValidString(str) {
			return protoreflect.ValueOfString(observe.Printable(str)), true
		}
		return v, false
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		isMsg := fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind
		switch {
		case fd.IsMap():
			mp := v.Map()
			type entry struct{ k, v protoreflect.Value }
			var moved []entry
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Kind() == protoreflect.StringKind {
					if nv, ok := fix(mv); ok {
						mp.Set(k, nv)
						n++
					}
				} else if fd.MapValue().Message() != nil {
					n += printableStrings(mv.Message())
				}
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if nk, ok := fix(k.Value()); ok {
						moved = append(moved, entry{k.Value(), nk})
					}
				}
				return true
			})
			for _, e := range moved {
				val := mp.Get(e.k.MapKey())
				mp.Clear(e.k.MapKey())
				mp.Set(e.v.MapKey(), val)
				n++
			}
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch {
				case fd.Kind() == protoreflect.StringKind:
					if nv, ok := fix(l.Get(i)); ok {
						l.Set(i, nv)
						n++
					}
				case isMsg:
					n += printableStrings(l.Get(i).Message())
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if nv, ok := fix(v); ok {
				m.Set(fd, nv)
				n++
			}
		case isMsg:
			n += printableStrings(v.Message())
		}
		return true
	})
	return n
}

// WatchSessions is how many Watch streams the source has opened to the
// control plane: it rises by one on every reconnect.
func (s *Source) WatchSessions() int64 { return s.sessions.Load() }

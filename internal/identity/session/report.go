package session

import (
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
)

// report is what the workload holds now.
func (s *Session) report() *apiv1.WorkloadReport {
	r := &apiv1.WorkloadReport{}
	if s.cfg.Report != nil {
		r = proto.Clone(s.cfg.Report()).(*apiv1.WorkloadReport)
	}
	r.BundleRoots = append(r.BundleRoots, s.ids.BundleRoots()...)
	if v, err := s.ids.GetX509SVID(); err == nil {
		leaf := v.Certificates[0]
		r.SpiffeId = v.ID.String()
		r.SvidSerial = identity.SerialHex(leaf)
		r.SvidNotAfter = leaf.NotAfter.Unix()
		r.SvidRoot = s.ids.SVIDRoot()
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
func (s *Session) marshalable(r *apiv1.WorkloadReport) {
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
func (s *Session) ReportStringsEscaped() int64      { return s.escaped.Load() }
func (s *Session) ReportDeniesUnmarshalable() int64 { return s.unmarshalable.Load() }

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

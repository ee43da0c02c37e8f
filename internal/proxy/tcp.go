package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"

	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/policy"
)

// serveTCP is the inbound L4 path: policy once per connection, then bytes.
func (in *inbound) serveTCP(ctx context.Context, ci *connInfo) {
	p := in.p
	defer ci.release()
	defer ci.conn.Close()
	in.tcpMu.Lock()
	in.tcpConns[ci] = struct{}{}
	in.tcpMu.Unlock()
	defer func() {
		in.tcpMu.Lock()
		delete(in.tcpConns, ci)
		in.tcpMu.Unlock()
	}()
	start := p.now()
	d := p.decide(&policy.Request{Source: ci.peer, Destination: p.dest})
	event := func(decision string) {
		if decision != "allow" {
			p.m.policyDenies.WithLabelValues(d.Policy, d.Rule, decision).Inc()
		}
		if p.cfg.Observer != nil {
			p.observe(&Event{Time: start, Direction: "inbound", Protocol: "tcp", Source: ci.peerStr, Destination: p.cfg.Service,
				Port: p.dest.Port, Duration: p.now().Sub(start), Decision: decision, Policy: d.Policy, Rule: d.Rule, Mode: d.Mode})
		}
	}
	if !d.Allow {
		p.m.tcpConns.WithLabelValues(ci.peerStr, p.self.String(), "deny").Inc()
		p.log.Info("connection denied", slog.String(observe.KeyPeer, ci.peerStr), slog.String(observe.KeyPolicy, d.Policy),
			slog.String(observe.KeyRule, d.Rule))
		event("deny")
		return
	}
	decision := "allow"
	if d.WouldDeny {
		decision = "audit-deny"
	}
	dctx, cancel := context.WithTimeout(ctx, p.cfg.Timeouts.Connect)
	app, err := (&net.Dialer{}).DialContext(dctx, "tcp", p.cfg.AppAddr)
	cancel()
	if err != nil {
		p.m.tcpConns.WithLabelValues(ci.peerStr, p.self.String(), "error").Inc()
		p.log.Warn("app unreachable", slog.String(observe.KeyAddr, p.cfg.AppAddr), slog.Any(observe.KeyError, err))
		return
	}
	p.m.tcpConns.WithLabelValues(ci.peerStr, p.self.String(), decision).Inc()
	tx, rx := pipe(app, ci.conn)
	p.m.tcpBytes.WithLabelValues("to_app").Add(float64(tx))
	p.m.tcpBytes.WithLabelValues("from_app").Add(float64(rx))
	if p.accessOn(ctx, p.telemetry(), decision) {
		p.log.LogAttrs(ctx, slog.LevelInfo, "inbound connection",
			slog.String(observe.KeyPeer, ci.peerStr),
			slog.String(observe.KeyDecision, decision),
			slog.String(observe.KeyRule, d.Rule),
			slog.Int64("bytes_to_app", tx), slog.Int64("bytes_from_app", rx),
			slog.Duration(observe.KeyDuration, p.now().Sub(start)))
	}
	event(decision)
}

// pipe copies both ways until both directions end, half-closing as each
// side finishes, then closes both. It returns the bytes written to a and
// the bytes read from a.
func pipe(a, b net.Conn) (toA, fromA int64) {
	var wg sync.WaitGroup
	wg.Go(func() {
		toA = copyHalf(a, b)
	})
	fromA = copyHalf(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
	return toA, fromA
}

func copyHalf(dst, src net.Conn) int64 {
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(dst, src, *bp)
	copyBufs.Put(bp)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		_ = cw.CloseWrite()
	} else {
		// An error on one side ends both directions.
		_ = dst.Close()
		_ = src.Close()
	}
	return n
}

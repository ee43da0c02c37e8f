package localmesh

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// forward is the ingress of an exposed service: clients outside the mesh
// (a browser, curl) reach the app through it. It is plain TCP on loopback,
// like a local gateway; inside the mesh every hop is mTLS.
type forward struct {
	ln   net.Listener
	to   string
	done sync.WaitGroup
}

func listenForward(addr, to string) (*forward, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &forward{ln: ln, to: to}, nil
}

func (f *forward) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		f.ln.Close()
	}()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			f.done.Wait()
			return
		}
		f.done.Add(1)
		go func() {
			defer f.done.Done()
			f.pipe(ctx, c)
		}()
	}
}

func (f *forward) pipe(ctx context.Context, c net.Conn) {
	defer c.Close()
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(ctx, "tcp", f.to)
	if err != nil {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

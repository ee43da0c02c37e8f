package demo

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
)

// runEcho is a raw TCP echo server (the L4 example): the sidecar can only
// decide per connection, on the caller's identity and the port.
func runEcho(ctx context.Context, listen string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	log.Info("tcp echo listening", "addr", listen)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			_, _ = io.Copy(c, c)
		}()
	}
}

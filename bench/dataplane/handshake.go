package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// runHandshakes opens new mTLS connections (full TLS 1.3 handshakes, no
// resumption) to an inbound sidecar as frontend, sends one HTTP/1.1 request
// on each and reads the answer, for a fixed duration, and prints the rate.
func runHandshakes(args []string) error {
	fs := flag.NewFlagSet("handshakes", flag.ContinueOnError)
	dir := fs.String("certs", "", "directory written by gencerts")
	addr := fs.String("addr", "", "inbound address")
	id := fs.String("id", "", "directory written by meshward identity fetch (instead of -certs: the shipped sidecars' CA)")
	conc := fs.Int("c", 8, "concurrent clients")
	dur := fs.Duration("t", 3*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	certFile, keyFile, caFile := filepath.Join(*dir, "frontend.pem"), filepath.Join(*dir, "frontend-key.pem"), filepath.Join(*dir, "ca.pem")
	if *id != "" {
		certFile, keyFile, caFile = filepath.Join(*id, "svid.pem"), filepath.Join(*id, "key.pem"), filepath.Join(*id, "bundle.pem")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "catalog",
		MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"},
	}
	if *id != "" {
		// SVIDs name no host: verify the chain to the bundle, as a sidecar
		// does (it then checks the SPIFFE ID; the bench needs no more).
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}
	}
	var ok, failed atomic.Int64
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := oneConn(*addr, cfg); err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.1f %d\n", float64(ok.Load())/dur.Seconds(), failed.Load())
	return nil
}

func oneConn(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

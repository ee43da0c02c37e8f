package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// runBursts sends the load fortio sends at a fixed rate, synchronized
// bursts (one request on each of c keep-alive connections every period),
// and says how the tail is made: whether the slowest 1% of requests are
// spread over many bursts (every burst a little slow) or sit in a few
// (stalls), and how long a burst takes to drain. With -log it writes one
// line per request (burst, start in Unix ns, latency in ms) to line the
// stalls up with other traces, such as GODEBUG=gctrace=1.
func runBursts(args []string) error {
	fs := flag.NewFlagSet("bursts", flag.ContinueOnError)
	addr := fs.String("addr", "", "plaintext HTTP/1.1 address (the A side of a pair, or the app)")
	conns := fs.Int("c", 16, "connections; each sends one request per burst")
	every := fs.Duration("every", 16*time.Millisecond, "time between bursts (16 ms with 16 connections is 1,000 rps)")
	dur := fs.Duration("t", 10*time.Second, "duration")
	logTo := fs.String("log", "", "file for one line per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *conns < 1 || *every <= 0 || *dur < *every {
		return fmt.Errorf("bursts: need -addr, -c >= 1 and -t >= -every")
	}
	type sample struct {
		burst int
		start time.Time
		lat   time.Duration
	}
	n := int(*dur / *every)
	begin := time.Now().Add(50 * time.Millisecond)
	results := make([][]sample, *conns)
	errs := make([]error, *conns)
	var wg sync.WaitGroup
	for c := range *conns {
		wg.Go(func() {
			nc, err := net.Dial("tcp", *addr)
			if err != nil {
				errs[c] = err
				return
			}
			defer nc.Close()
			br := bufio.NewReader(nc)
			req := []byte("GET / HTTP/1.1\r\nHost: catalog\r\nUser-Agent: dataplane-bursts\r\n\r\n")
			for b := range n {
				time.Sleep(time.Until(begin.Add(time.Duration(b) * *every)))
				t0 := time.Now()
				if _, err := nc.Write(req); err != nil {
					errs[c] = err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				if err != nil {
					errs[c] = err
					return
				}
				results[c] = append(results[c], sample{b, t0, time.Since(t0)})
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bursts: %w", err)
		}
	}
	all := slices.Concat(results...)
	if *logTo != "" {
		f, err := os.Create(*logTo)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for _, s := range all {
			fmt.Fprintf(w, "%d %d %.3f\n", s.burst, s.start.UnixNano(), ms(s.lat))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	drain := make([]time.Duration, n) // the slowest request of each burst
	for _, s := range all {
		drain[s.burst] = max(drain[s.burst], s.lat)
	}
	slices.SortFunc(all, func(a, b sample) int { return int(a.lat - b.lat) })
	worst := map[int]bool{}
	for _, s := range all[len(all)-max(1, len(all)/100):] {
		worst[s.burst] = true
	}
	lat := make([]time.Duration, len(all))
	for i, s := range all {
		lat[i] = s.lat
	}
	slices.Sort(drain)
	fmt.Printf("requests %d: p50 %.2f p90 %.2f p99 %.2f max %.2f ms; the slowest 1%% sit in %d of %d bursts; "+
		"burst drain p50 %.2f p90 %.2f p99 %.2f ms\n", len(all), ms(quantile(lat, .5)), ms(quantile(lat, .9)),
		ms(quantile(lat, .99)), ms(lat[len(lat)-1]), len(worst), n,
		ms(quantile(drain, .5)), ms(quantile(drain, .9)), ms(quantile(drain, .99)))
	return nil
}

// quantile of sorted values, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

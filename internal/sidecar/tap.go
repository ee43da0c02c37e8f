package sidecar

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"meshward.dev/meshward/internal/proxy"
)

// tapHub fans the sidecar's request events out to `meshward tap` clients.
// Publishing never blocks the data path: a slow client misses events.
type tapHub struct {
	mu   sync.Mutex
	subs map[chan *proxy.Event]struct{}
}

func newTapHub() *tapHub { return &tapHub{subs: map[chan *proxy.Event]struct{}{}} }

func (h *tapHub) publish(e *proxy.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- e:
		default:
		}
	}
}

func (h *tapHub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// tapFilter selects events: empty fields match everything.
type tapFilter struct {
	source, path, decision string
}

func (f tapFilter) match(e *proxy.Event) bool {
	return (f.source == "" || strings.Contains(e.Source, f.source)) &&
		(f.path == "" || strings.HasPrefix(e.Path, f.path)) &&
		(f.decision == "" || e.Decision == f.decision)
}

// ServeHTTP streams matching events as JSON lines until the client leaves.
func (h *tapHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := tapFilter{source: q.Get("source"), path: q.Get("path"), decision: q.Get("decision")}
	c := make(chan *proxy.Event, 256)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, c)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-c:
			if !f.match(e) {
				continue
			}
			if err := enc.Encode(e); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

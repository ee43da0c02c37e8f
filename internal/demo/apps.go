package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Names lists the demo services.
var Names = []string{"frontend", "catalog", "orders", "payments"}

// Run serves the demo service name until ctx is cancelled.
func Run(ctx context.Context, name string, log *slog.Logger) error {
	listen := os.Getenv("MESHWARD_LISTEN")
	if listen == "" {
		return errors.New("MESHWARD_LISTEN is not set: demo apps are started by `meshward up --demo`")
	}
	if name == "tcp-echo" {
		return runEcho(ctx, listen, log)
	}
	a := &app{name: name, log: log, client: &http.Client{Timeout: 5 * time.Second}}
	go a.watchIdentity(ctx)
	mux := http.NewServeMux()
	switch name {
	case "frontend":
		a.frontend(mux)
	case "catalog":
		a.catalog(mux)
	case "orders":
		a.orders(mux)
	case "payments":
		a.payments(mux)
	default:
		return fmt.Errorf("no demo app %q (want one of %s, tcp-echo)", name, strings.Join(Names, ", "))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second) // ctx is done: shut down on a fresh deadline
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("demo app listening", "service", name, "addr", listen, "identity", a.identity())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type app struct {
	name   string
	log    *slog.Logger
	client *http.Client
	id     atomic.Value // string: own SPIFFE ID from the Workload API

	mu    sync.Mutex
	calls []call // frontend: the latest calls, newest first
}

// watchIdentity follows the app's own SVID over the SPIFFE Workload API,
// as any SPIFFE-aware app would.
func (a *app) watchIdentity(ctx context.Context) {
	if os.Getenv("SPIFFE_ENDPOINT_SOCKET") == "" {
		return
	}
	err := workloadapi.WatchX509Context(ctx, watcher{a}) // retries until ctx ends
	if err != nil && ctx.Err() == nil {
		a.log.Warn("workload api", "err", err)
	}
}

type watcher struct{ a *app }

func (w watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	if s := c.DefaultSVID(); s != nil {
		w.a.id.Store(s.ID.String())
	}
}
func (watcher) OnX509ContextWatchError(error) {}

func (a *app) identity() string {
	if v, ok := a.id.Load().(string); ok {
		return v
	}
	return "(waiting for the Workload API)"
}

// reply writes v as JSON with who served it and who called.
func (a *app) reply(w http.ResponseWriter, r *http.Request, code int, v map[string]any) {
	v["served_by"] = a.identity()
	if c := r.Header.Get("X-Meshward-Peer-Identity"); c != "" {
		v["caller"] = c
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// upstream is the sidecar listener for calls to service.
func upstream(service string) string {
	return os.Getenv("MESHWARD_UPSTREAM_" + strings.ToUpper(service))
}

type product struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Price int    `json:"price_cents"`
}

var products = []product{{1, "mesh-shaped mug", 1200}, {2, "SPIFFE sticker pack", 400}, {3, "mTLS hoodie", 4500}}

func (a *app) catalog(mux *http.ServeMux) {
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		a.reply(w, r, 200, map[string]any{"products": products})
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		for _, p := range products {
			if p.ID == id {
				a.reply(w, r, 200, map[string]any{"product": p})
				return
			}
		}
		a.reply(w, r, 404, map[string]any{"error": "no such product"})
	})
}

func (a *app) payments(mux *http.ServeMux) {
	var n atomic.Int64
	mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Amount int `json:"amount_cents"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Amount <= 0 {
			a.reply(w, r, 400, map[string]any{"error": "want {\"amount_cents\": N}"})
			return
		}
		a.reply(w, r, 200, map[string]any{"charge": fmt.Sprintf("ch_%04d", n.Add(1)), "amount_cents": req.Amount, "status": "charged"})
	})
}

func (a *app) orders(mux *http.ServeMux) {
	var mu sync.Mutex
	orders := map[int]map[string]any{}
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Product int `json:"product"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Product == 0 {
			a.reply(w, r, 400, map[string]any{"error": "want {\"product\": ID}"})
			return
		}
		price := a.callJSON(r.Context(), "catalog", http.MethodGet, "/products/"+strconv.Itoa(req.Product), nil)
		if price.Status != 200 {
			a.reply(w, r, 502, map[string]any{"error": "price check failed", "catalog": price})
			return
		}
		amount := 0
		if p, ok := price.Body["product"].(map[string]any); ok {
			if c, ok := p["price_cents"].(float64); ok {
				amount = int(c)
			}
		}
		charge := a.callJSON(r.Context(), "payments", http.MethodPost, "/charge", map[string]any{"amount_cents": amount})
		if charge.Status != 200 {
			a.reply(w, r, 502, map[string]any{"error": "payment failed", "payments": charge})
			return
		}
		mu.Lock()
		id := len(orders) + 1
		o := map[string]any{"order": id, "product": req.Product, "amount_cents": amount, "charge": charge.Body["charge"], "charged_by": charge.Body["served_by"]}
		orders[id] = o
		mu.Unlock()
		a.reply(w, r, 201, o)
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		mu.Lock()
		o, ok := orders[id]
		mu.Unlock()
		if !ok {
			a.reply(w, r, 404, map[string]any{"error": "no such order"})
			return
		}
		a.reply(w, r, 200, o)
	})
}

// call is one call an app made through its sidecar, as the frontend shows
// it.
type call struct {
	Time     time.Time      `json:"time"`
	From     string         `json:"from"`
	To       string         `json:"to"`
	Method   string         `json:"method"`
	Path     string         `json:"path"`
	Status   int            `json:"status"`
	Allowed  bool           `json:"allowed"`
	Answered string         `json:"answered_by,omitempty"`
	Body     map[string]any `json:"body,omitempty"`
	Text     string         `json:"text,omitempty"`
}

// callJSON calls service through the sidecar's plaintext upstream
// listener; the sidecar does mTLS and checks the server's identity.
func (a *app) callJSON(ctx context.Context, service, method, path string, body any) call {
	c := call{Time: time.Now().UTC(), From: a.name, To: service, Method: method, Path: path}
	addr := upstream(service)
	if addr == "" {
		c.Text = "no upstream listener for " + service + " (MESHWARD_UPSTREAM_" + strings.ToUpper(service) + ")"
		return c
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		c.Text = err.Error()
		return c
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		c.Text = err.Error()
		return c
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	c.Status = resp.StatusCode
	c.Allowed = resp.StatusCode != http.StatusForbidden
	if json.Unmarshal(raw, &c.Body) == nil {
		if s, ok := c.Body["served_by"].(string); ok {
			c.Answered = s
		}
	} else {
		c.Text = strings.TrimSpace(string(raw))
	}
	return c
}

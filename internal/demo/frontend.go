package demo

import (
	"context"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strconv"
)

func (a *app) record(c call) call {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append([]call{c}, a.calls...)
	if len(a.calls) > 20 {
		a.calls = a.calls[:20]
	}
	return c
}

// The three things a newcomer can try, as functions of the frontend.
func (a *app) browse(ctx context.Context) call {
	return a.record(a.callJSON(ctx, "catalog", http.MethodGet, "/products", nil))
}

func (a *app) order(ctx context.Context, product int) call {
	return a.record(a.callJSON(ctx, "orders", http.MethodPost, "/orders", map[string]any{"product": product}))
}

// forbidden has the frontend try to charge a card itself. Only orders may
// call payments, so payments' sidecar refuses it with 403 (default deny).
func (a *app) forbidden(ctx context.Context) call {
	return a.record(a.callJSON(ctx, "payments", http.MethodPost, "/charge", map[string]any{"amount_cents": 100}))
}

func (a *app) frontend(mux *http.ServeMux) {
	// The API answers with the status of the call it made (502 when the
	// call failed), so curl and load tests see allowed vs denied directly.
	writeCall := func(w http.ResponseWriter, c call) {
		code := c.Status
		if code == 0 {
			code = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(c)
	}
	mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) { writeCall(w, a.browse(r.Context())) })
	mux.HandleFunc("POST /api/orders", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Product int `json:"product"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req)
		if req.Product == 0 {
			req.Product = 1
		}
		writeCall(w, a.order(r.Context(), req.Product))
	})
	mux.HandleFunc("GET /api/forbidden", func(w http.ResponseWriter, r *http.Request) { writeCall(w, a.forbidden(r.Context())) })
	mux.HandleFunc("GET /api/calls", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		calls := append([]call(nil), a.calls...)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"calls": calls})
	})
	mux.HandleFunc("POST /do/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("action") {
		case "browse":
			a.browse(r.Context())
		case "order":
			p, _ := strconv.Atoi(r.FormValue("product"))
			if p == 0 {
				p = 1
			}
			a.order(r.Context(), p)
		case "forbidden":
			a.forbidden(r.Context())
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		calls := append([]call(nil), a.calls...)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"Self": a.identity(), "Calls": calls})
	})
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshward demo shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1a1a1a;background:#fafafa}
h1{margin-bottom:.2rem} .sub{color:#444;margin-top:0}
form{display:inline-block;margin:.3rem .5rem .3rem 0}
button{font-size:1rem;padding:.5rem .9rem;border-radius:.4rem;border:1px solid #333;background:#fff;cursor:pointer}
button.danger{border-color:#a40000;color:#a40000}
table{border-collapse:collapse;width:100%;margin-top:1rem;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.45rem;text-align:left;font-size:.92rem;vertical-align:top}
.ok{color:#0b6b2b;font-weight:600} .deny{color:#a40000;font-weight:700}
code{font-size:.85rem;word-break:break-all}
</style></head><body>
<h1>meshward demo shop</h1>
<p class="sub">This page is served by the <b>frontend</b>, whose identity is <code>{{.Self}}</code>.
Every call below went through two sidecars over mutual TLS; the callee's sidecar checked the caller's identity against policy.</p>
<form method="post" action="/do/browse"><button>Browse the catalog (frontend &rarr; catalog)</button></form>
<form method="post" action="/do/order"><input type="hidden" name="product" value="1"><button>Buy a mug (frontend &rarr; orders &rarr; payments)</button></form>
<form method="post" action="/do/forbidden"><button class="danger">Try a forbidden call (frontend &rarr; payments)</button></form>
<table aria-label="calls made by the frontend"><thead><tr><th scope="col">call</th><th scope="col">result</th><th scope="col">answered by</th></tr></thead><tbody>
{{range .Calls}}<tr><td>{{.From}} &rarr; {{.To}}<br><code>{{.Method}} {{.Path}}</code></td>
<td>{{if eq .Status 0}}<span class="deny">failed</span> {{.Text}}{{else if .Allowed}}<span class="ok">allowed</span> ({{.Status}}){{else}}<span class="deny">DENIED</span> ({{.Status}}) {{.Text}}<br>see the <code>{{.To}}-proxy</code> log: <code>rule=default-deny</code>{{end}}</td>
<td><code>{{if .Answered}}{{.Answered}}{{else}}{{.To}}'s sidecar{{end}}</code></td></tr>
{{else}}<tr><td colspan="3">No calls yet: press a button.</td></tr>{{end}}
</tbody></table>
</body></html>
`))

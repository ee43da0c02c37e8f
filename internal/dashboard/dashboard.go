package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/observe"
	"meshward.dev/meshward/internal/store"
)

// Source is what the dashboard reads from the control plane.
type Source interface {
	Status() *apiv1.MeshStatusResponse
	AuditEvents(ctx context.Context, since time.Time) ([]store.AuditEvent, error)
	CurrentPolicy() *apiv1.Policy
}

// Config configures the dashboard.
type Config struct {
	Source Source
	Mesh   *config.Mesh // optional: the mesh file `up` runs (for findings)
	Now    func() time.Time
	Logger *slog.Logger
	// ScrapeInterval is the least time between two scrapes of the
	// sidecars' /metrics, whoever asks (default and minimum 2s).
	ScrapeInterval time.Duration
	// ScrapeTimeout is unused: nothing is fetched from sidecars any more
	// (they push their counters); kept so callers still compile.
	ScrapeTimeout time.Duration
	// Refresh is how often open pages poll for updates (default 2s).
	Refresh time.Duration
	// AllowedHosts are host names, besides IP addresses and localhost,
	// that requests may name in their Host header.
	AllowedHosts []string
	// InsecureRemoteScrape has no effect: the dashboard never fetches a
	// workload's admin address (sidecars push their counters).
	InsecureRemoteScrape bool
}

// Defaults.
const (
	DefaultScrapeInterval = 2 * time.Second
	DefaultScrapeTimeout  = time.Second
	DefaultRefresh        = 2 * time.Second
)

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Source == nil {
		return errors.New("dashboard: source is required")
	}
	if c.ScrapeTimeout < 0 || c.Refresh < 0 || c.ScrapeInterval < 0 {
		return errors.New("dashboard: durations must not be negative")
	}
	return nil
}

//go:embed assets
var assets embed.FS

// Dashboard serves the pages.
type Dashboard struct {
	cfg     Config
	log     *slog.Logger
	tmpl    *template.Template
	scraper *scraper
	mux     *http.ServeMux

	polMu  sync.Mutex
	pol    *policyState
	polKey string

	findMu  sync.Mutex
	find    *Findings
	findKey string
}

// New returns the dashboard's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	d, err := newDashboard(cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func newDashboard(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = observe.Discard()
	}
	if cfg.ScrapeInterval < DefaultScrapeInterval {
		cfg.ScrapeInterval = DefaultScrapeInterval
	}
	if cfg.ScrapeTimeout == 0 {
		cfg.ScrapeTimeout = DefaultScrapeTimeout
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/templates/*.html")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{
		cfg:     cfg,
		log:     cfg.Logger,
		tmpl:    tmpl,
		scraper: &scraper{now: cfg.Now, interval: cfg.ScrapeInterval},
		mux:     http.NewServeMux(),
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	d.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	for _, p := range pages {
		d.mux.HandleFunc("GET "+p.Path, d.servePage(p))
		d.mux.HandleFunc("GET /fragment/"+p.Name, d.serveFragment(p))
		d.mux.HandleFunc("GET /api/"+p.Name, d.serveJSON(p))
	}
	return d, nil
}

// page is one page of the dashboard.
type page struct {
	Name, Path, Href, Title string
}

var pages = []page{
	{Name: "graph", Path: "/{$}", Href: "/", Title: "Service graph"},
	{Name: "identities", Path: "/identities", Href: "/identities", Title: "Identities and certificates"},
	{Name: "policies", Path: "/policies", Href: "/policies", Title: "Policies"},
	{Name: "denials", Path: "/denials", Href: "/denials", Title: "Denials and audit"},
	{Name: "findings", Path: "/findings", Href: "/findings", Title: "Findings"},
}

// ServeHTTP checks the Host, sets the security headers and serves.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if !d.hostAllowed(r.Host) {
		// A page on another site may resolve its own name to this
		// address (DNS rebinding); it must not read the mesh's state.
		http.Error(w, "meshward dashboard: host not allowed", http.StatusMisdirectedRequest)
		return
	}
	d.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether the Host header names an IP address,
// localhost or a configured host.
func (d *Dashboard) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || slices.ContainsFunc(d.cfg.AllowedHosts, func(a string) bool { return strings.EqualFold(a, host) })
}

// pageData is what every page and fragment template gets.
type pageData struct {
	Page        page
	Pages       []page
	TrustDomain string
	Now         time.Time
	RefreshMS   int64
	Data        any
}

// data computes a page's view.
func (d *Dashboard) data(ctx context.Context, p page) any {
	switch p.Name {
	case "graph":
		g := d.graph(ctx)
		return graphPage{Graph: g, Layout: layoutGraph(g, d.declaredCalls())}
	case "identities":
		return buildIdentities(d.cfg.Source.Status(), d.cfg.Now())
	case "policies":
		return d.policyView(ctx).view
	case "denials":
		return d.denials(ctx)
	case "findings":
		return d.findings(ctx)
	}
	return nil
}

// graphPage is the graph page's view.
type graphPage struct {
	Graph
	Layout graphLayout
}

// declaredCalls are the calls the mesh file declares (service →
// upstream), as SPIFFE IDs.
func (d *Dashboard) declaredCalls() [][2]string {
	m := d.cfg.Mesh
	if m == nil {
		return nil
	}
	td, err := spiffeid.TrustDomainFromString(m.TrustDomain)
	if err != nil {
		return nil
	}
	idOf := func(ns, svc string) string {
		var id spiffeid.ID
		var err error
		if t, ok := m.Service(svc); ok {
			id, err = t.ID(td)
		} else {
			id, err = identity.ServiceID(td, ns, svc)
		}
		if err != nil {
			return ""
		}
		return id.String()
	}
	var out [][2]string
	for _, s := range m.Services {
		for _, u := range s.Upstreams {
			out = append(out, [2]string{idOf(s.Namespace, s.Name), idOf(s.Namespace, u.Service)})
		}
	}
	return out
}

func (d *Dashboard) pageData(ctx context.Context, p page) pageData {
	return pageData{
		Page: p, Pages: pages, TrustDomain: d.cfg.Source.Status().GetTrustDomain(), Now: d.cfg.Now().UTC(),
		RefreshMS: d.cfg.Refresh.Milliseconds(), Data: d.data(ctx, p),
	}
}

func (d *Dashboard) servePage(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.render(w, "layout", d.pageData(r.Context(), p))
	}
}

func (d *Dashboard) serveFragment(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.render(w, p.Name, d.pageData(r.Context(), p))
	}
}

func (d *Dashboard) serveJSON(p page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := d.data(r.Context(), p)
		if gp, ok := v.(graphPage); ok {
			v = gp.Graph
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			d.log.Error("dashboard json", observe.KeyError, err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
	}
}

// render executes a template into a buffer first, so a template error is
// a clean 500 and not half a page.
func (d *Dashboard) render(w http.ResponseWriter, name string, data pageData) {
	var buf bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		d.log.Error("dashboard template", "template", name, observe.KeyError, err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

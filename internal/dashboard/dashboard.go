// Package dashboard is the control plane's read-only web view of the mesh.
// (Placeholder: the observability work replaces this file.)
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/config"
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
}

// New returns the dashboard's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Source == nil {
		return nil, errors.New("dashboard: source is required")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		st := cfg.Source.Status()
		fmt.Fprintf(w, "meshward: %d workloads in %s\n", len(st.Workloads), st.TrustDomain)
	})
	return mux, nil
}

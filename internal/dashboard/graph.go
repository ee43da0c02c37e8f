package dashboard

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
)

// Graph is the service graph: services as nodes, observed calls as edges.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
	// Scrapes says, per sidecar, whether its metrics could be read.
	Scrapes []Scrape `json:"scrapes"`
}

// Node is one service (all instances of one identity).
type Node struct {
	ID        string `json:"id"` // SPIFFE ID
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Label     string `json:"label"`
	Instances int    `json:"instances"` // sidecars connected to the control plane
}

// Edge is the traffic from one identity to another, as the callee's
// sidecar saw it (or the caller's, when the callee's metrics are
// unavailable). Every edge between sidecars is mutual TLS.
type Edge struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Requests, Errors (5xx, or TCP connections that failed), Denies and
	// AuditDenies (allowed in audit mode, would be denied) are totals
	// since the sidecars started.
	Requests    int64 `json:"requests"`
	Connections int64 `json:"tcp_connections"`
	Errors      int64 `json:"errors"`
	Denies      int64 `json:"denies"`
	AuditDenies int64 `json:"audit_denies"`
	// RequestsPerSecond is over the last two scrapes (HTTP requests plus
	// TCP connections); RateKnown is false until there are two.
	RequestsPerSecond float64 `json:"requests_per_second"`
	RateKnown         bool    `json:"rate_known"`
	MTLS              bool    `json:"mtls"`
	// AllowedByPolicy: some rule of the current policy lets the source
	// call the destination. Forbidden: denied calls were attempted and no
	// rule allows any.
	AllowedByPolicy bool     `json:"allowed_by_policy"`
	Forbidden       bool     `json:"forbidden"`
	Protocols       []string `json:"protocols"`
	ObservedBy      string   `json:"observed_by"` // "destination" | "source"
}

// Scrape is the state of one sidecar's metrics.
type Scrape struct {
	SPIFFEID string `json:"spiffe_id"`
	Addr     string `json:"admin_addr"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// graph builds the service graph from the status and the sidecars'
// metrics.
func (d *Dashboard) graph(ctx context.Context) Graph {
	st := d.cfg.Source.Status()
	var targets []target
	seenAddr := map[string]bool{}
	for _, w := range st.GetWorkloads() {
		if w.GetAdminAddr() == "" || seenAddr[w.GetAdminAddr()] {
			continue
		}
		seenAddr[w.GetAdminAddr()] = true
		t := target{addr: w.GetAdminAddr(), spiffeID: w.GetSpiffeId(), traffic: w.GetTraffic()}
		if w.GetTrafficAt() != 0 {
			t.at = time.Unix(0, w.GetTrafficAt())
		}
		targets = append(targets, t)
	}
	sidecars := d.scraper.snapshot(ctx, targets)
	return buildGraph(st.GetWorkloads(), sidecars, d.policyView(ctx).allows)
}

// buildGraph is the pure part of graph; allows (may be nil) says whether
// the policy lets source call destination.
func buildGraph(workloads []*apiv1.WorkloadStatus, sidecars []sidecarMetrics, allows func(src, dst string) bool) Graph {
	g := Graph{Nodes: []Node{}, Edges: []Edge{}, Scrapes: []Scrape{}}
	nodes := map[string]*Node{}
	addNode := func(id string) *Node {
		if n := nodes[id]; n != nil {
			return n
		}
		ns, svc := splitID(id)
		n := &Node{ID: id, Service: svc, Namespace: ns, Label: label(id)}
		nodes[id] = n
		return n
	}
	for _, w := range workloads {
		n := addNode(w.GetSpiffeId())
		n.Instances++
	}
	// Whose inbound traffic can be read from its own sidecar.
	inboundSeen := map[string]bool{}
	for _, m := range sidecars {
		sc := Scrape{SPIFFEID: m.spiffeID, Addr: m.addr, OK: m.err == nil && m.cur != nil}
		if m.err != nil {
			sc.Error = m.err.Error()
		}
		g.Scrapes = append(g.Scrapes, sc)
		if sc.OK {
			inboundSeen[m.spiffeID] = true
		}
	}
	type pair struct{ src, dst string }
	edges := map[pair]*Edge{}
	protos := map[pair]map[string]bool{}
	for i := range sidecars {
		m := &sidecars[i]
		if m.cur == nil {
			continue
		}
		for k, v := range m.cur.values {
			var by string
			switch {
			case k.decision != "" && k.destination == m.spiffeID && k.source != "":
				by = "destination" // the callee's inbound view
			case k.decision == "" && k.source == m.spiffeID && k.destination != "" && !inboundSeen[k.destination]:
				by = "source" // the caller's outbound view, when the callee's is missing
			default:
				continue
			}
			p := pair{k.source, k.destination}
			e := edges[p]
			if e == nil {
				e = &Edge{Source: k.source, Destination: k.destination, MTLS: true, ObservedBy: by}
				edges[p] = e
				protos[p] = map[string]bool{}
			}
			n := int64(math.Round(v))
			switch k.kind {
			case "http":
				e.Requests += n
				protos[p][k.protocol] = true
				if c, err := strconv.Atoi(k.code); err == nil && c >= 500 {
					e.Errors += n
				}
			case "tcp":
				e.Connections += n
				protos[p]["tcp"] = true
				if k.decision == "error" {
					e.Errors += n
				}
			}
			switch k.decision {
			case "deny":
				e.Denies += n
			case "audit-deny":
				e.AuditDenies += n
			}
			if r, ok := m.rate(k); ok {
				e.RequestsPerSecond += r
				e.RateKnown = true
			}
		}
	}
	for p, e := range edges {
		addNode(p.src)
		addNode(p.dst)
		for proto := range protos[p] {
			if proto != "" {
				e.Protocols = append(e.Protocols, proto)
			}
		}
		sort.Strings(e.Protocols)
		if allows != nil {
			e.AllowedByPolicy = allows(p.src, p.dst)
		}
		e.Forbidden = e.Denies > 0 && !e.AllowedByPolicy
		e.RequestsPerSecond = math.Round(e.RequestsPerSecond*100) / 100
		g.Edges = append(g.Edges, *e)
	}
	for _, n := range nodes {
		g.Nodes = append(g.Nodes, *n)
	}
	sort.Slice(g.Scrapes, func(i, j int) bool {
		a, b := g.Scrapes[i], g.Scrapes[j]
		if a.SPIFFEID != b.SPIFFEID {
			return a.SPIFFEID < b.SPIFFEID
		}
		return a.Addr < b.Addr
	})
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Destination < b.Destination
	})
	return g
}

// splitID returns the namespace and account of a SPIFFE ID of the form
// spiffe://td/ns/N/sa/A ("" and the path for any other).
func splitID(id string) (ns, svc string) {
	if ns, account, ok := identity.ParseServiceIDString(id); ok {
		return ns, account
	}
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", id
	}
	_, path, _ := strings.Cut(rest, "/")
	return "", "/" + path
}

// label is how an identity is shown: the service, prefixed with its
// namespace unless that is "default".
func label(id string) string {
	switch id {
	case "*":
		return "any workload"
	}
	if ns, ok := identity.ParseNamespacePattern(id); ok {
		return "namespace " + ns
	}
	ns, svc := splitID(id)
	if ns == "" || ns == "default" {
		return svc
	}
	return ns + "/" + svc
}

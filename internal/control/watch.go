package control

import (
	"crypto/x509"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
	"meshward.dev/meshward/internal/identity"
	"meshward.dev/meshward/internal/identity/ca"
)

// meshState is what every workload is told, as one immutable snapshot.
type meshState struct {
	bundle []*x509.Certificate
	policy *apiv1.Policy // nil before the first apply
	// policyVersion is the same revision as history shows it (applied at
	// and by, message), for MeshStatus.
	policyVersion *apiv1.PolicyVersion
	banned        []string // sorted
}

// member is one connected watch stream.
type member struct {
	id         spiffeid.ID
	namespace  string
	service    string
	since      time.Time
	lastReport time.Time
	report     *apiv1.WorkloadReport
}

// hub fans mesh state out to watch streams and collects their reports. A
// change closes the current `changed` channel, waking every stream, which
// then sends a fresh snapshot.
type hub struct {
	mu        sync.Mutex
	state     meshState
	fleet     map[uint64]*member
	nextKey   uint64
	changed   chan struct{}
	changedAt time.Time // when changed was last closed
	done      chan struct{}
}

func newHub() *hub {
	return &hub{fleet: map[uint64]*member{}, changed: make(chan struct{}), done: make(chan struct{})}
}

func (h *hub) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
	h.changedAt = time.Now()
}

// update changes the mesh state and wakes every stream.
func (h *hub) update(fn func(*meshState)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(&h.state)
	h.notifyLocked()
}

// close ends every watch stream (control plane shutdown).
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
	default:
		close(h.done)
	}
}

func (h *hub) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.fleet)
}

// join adds a watch stream, unless its identity already holds limit.
func (h *hub) join(m *member, limit int) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.fleet {
		if o.id == m.id {
			n++
		}
	}
	if n >= limit {
		return 0, false
	}
	h.nextKey++
	h.fleet[h.nextKey] = m
	return h.nextKey, true
}

func (h *hub) leave(key uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.fleet[key]
	delete(h.fleet, key)
	if m != nil && m.report.GetInboundAddr() != "" {
		h.notifyLocked() // endpoints changed
	}
}

// report records what a workload holds; endpoint changes wake everyone.
func (h *hub) report(key uint64, r *apiv1.WorkloadReport, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.fleet[key]
	if m == nil {
		return
	}
	old := m.report
	m.report, m.lastReport = r, now
	if old.GetInboundAddr() != r.GetInboundAddr() {
		h.notifyLocked()
	}
}

// view returns the current snapshot for the member with key, and the
// channel that is closed at the next change.
func (h *hub) view(key uint64, signingRoot string, phase ca.Phase, complete bool) (*apiv1.MeshUpdate, <-chan struct{}, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.fleet[key]; m != nil && h.bannedLocked(m.id) {
		// A banned workload learns that it is banned, and nothing else.
		return &apiv1.MeshUpdate{BannedSelf: true, Banned: []string{m.id.String()}}, h.changed, h.changedAt
	}
	u := &apiv1.MeshUpdate{Policy: h.state.policy, Banned: h.state.banned, Endpoints: map[string]*apiv1.Endpoints{}, EndpointsComplete: complete}
	for _, c := range h.state.bundle {
		u.Bundle = append(u.Bundle, c.Raw)
	}
	for _, m := range h.fleet {
		if addr := m.report.GetInboundAddr(); addr != "" && m.service != "" && !h.bannedLocked(m.id) {
			e := u.Endpoints[m.service]
			if e == nil {
				e = &apiv1.Endpoints{}
				u.Endpoints[m.service] = e
			}
			if !slices.Contains(e.Addrs, addr) {
				e.Addrs = append(e.Addrs, addr)
			}
		}
	}
	for _, e := range u.Endpoints {
		sort.Strings(e.Addrs)
	}
	// Once a new root signs, a workload whose SVID chains to the old one
	// is asked to renew right away instead of at half-life.
	if m := h.fleet[key]; m != nil && phase == ca.PhaseActivate && m.report != nil && m.report.SvidRoot != signingRoot {
		u.RenewNow = true
	}
	return u, h.changed, h.changedAt
}

func (h *hub) bannedLocked(id spiffeid.ID) bool {
	_, found := slices.BinarySearch(h.state.banned, id.String())
	return found
}

// holdings is the fleet's proof for root rotation.
func (h *hub) holdings() []ca.Holding {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ca.Holding
	for _, m := range h.fleet {
		if h.bannedLocked(m.id) {
			// It may not renew, so it cannot hold a rotation up.
			continue
		}
		if m.report == nil {
			// Connected but has not reported yet: it cannot prove anything,
			// so it holds the rotation up.
			out = append(out, ca.Holding{SPIFFEID: m.id.String()})
			continue
		}
		out = append(out, ca.Holding{SPIFFEID: m.id.String(), BundleRoots: m.report.BundleRoots, SVIDRoot: m.report.SvidRoot})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SPIFFEID < out[j].SPIFFEID })
	return out
}

// workloads lists the connected workloads for status.
func (h *hub) workloads() []*apiv1.WorkloadStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*apiv1.WorkloadStatus
	for _, m := range h.fleet {
		r := m.report
		out = append(out, &apiv1.WorkloadStatus{
			SpiffeId:          m.id.String(),
			Service:           m.service,
			Namespace:         m.namespace,
			InboundAddr:       r.GetInboundAddr(),
			SvidSerial:        r.GetSvidSerial(),
			SvidNotAfter:      r.GetSvidNotAfter(),
			PolicyVersion:     r.GetPolicyVersion(),
			PolicyError:       r.GetPolicyError(),
			ActiveConnections: r.GetActiveConnections(),
			TotalRequests:     r.GetTotalRequests(),
			ConnectedSince:    m.since.Unix(),
			LastReport:        m.lastReport.Unix(),
			AdminAddr:         r.GetAdminAddr(),
			Traffic:           r.GetTraffic(),
			TrafficAt:         m.lastReport.UnixNano(),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].SpiffeId != out[j].SpiffeId {
			return out[i].SpiffeId < out[j].SpiffeId
		}
		return out[i].InboundAddr < out[j].InboundAddr
	})
	return out
}

func newMember(id spiffeid.ID, now time.Time) *member {
	ns, svc, _ := identity.ParseServiceID(id)
	return &member{id: id, namespace: ns, service: svc, since: now}
}

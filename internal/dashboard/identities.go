package dashboard

import (
	"slices"
	"sort"
	"time"

	apiv1 "meshward.dev/meshward/internal/api/meshwardv1"
)

// expiringSoon is when a certificate is shown as expiring: a workload
// certificate renews at half-life, so one this close to its end missed
// its renewals.
const expiringSoon = 10 * time.Minute

// Identities is the identities and certificates view.
type Identities struct {
	TrustDomain string     `json:"trust_domain"`
	Now         time.Time  `json:"now"`
	Workloads   []Workload `json:"workloads"`
	CA          []CACert   `json:"ca"`
	// NextRotation is when the intermediate CA is next rotated (zero when
	// unknown).
	NextRotation time.Time `json:"next_intermediate_rotation"`
	Phase        string    `json:"root_rotation_phase"`
	PhaseDetail  string    `json:"root_rotation_detail,omitempty"`
	Lagging      []string  `json:"lagging,omitempty"`
	Banned       []string  `json:"banned"`
}

// Workload is one sidecar's identity and certificate.
type Workload struct {
	Service       string    `json:"service"`
	Namespace     string    `json:"namespace"`
	SPIFFEID      string    `json:"spiffe_id"`
	InboundAddr   string    `json:"inbound_addr"`
	Serial        string    `json:"svid_serial"`
	NotAfter      time.Time `json:"svid_not_after"`
	State         string    `json:"state"` // valid | expiring | expired | none
	PolicyVersion string    `json:"policy_version"`
	PolicyError   string    `json:"policy_error,omitempty"`
	LastReport    time.Time `json:"last_report"`
	Banned        bool      `json:"banned"`
}

// CACert is one certificate of the CA chain.
type CACert struct {
	Role        string    `json:"role"`  // root | intermediate
	State       string    `json:"state"` // active | staged | retiring | superseded
	Subject     string    `json:"subject"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Expiry      string    `json:"expiry_state"` // valid | expiring | expired
}

func buildIdentities(st *apiv1.MeshStatusResponse, now time.Time) Identities {
	v := Identities{TrustDomain: st.GetTrustDomain(), Now: now.UTC(), Workloads: []Workload{}, CA: []CACert{}, Banned: []string{}}
	v.Banned = append(v.Banned, st.GetBanned()...)
	sort.Strings(v.Banned)
	for _, w := range st.GetWorkloads() {
		wl := Workload{
			Service: w.GetService(), Namespace: w.GetNamespace(), SPIFFEID: w.GetSpiffeId(), InboundAddr: w.GetInboundAddr(),
			Serial: w.GetSvidSerial(), PolicyVersion: w.GetPolicyVersion(), PolicyError: w.GetPolicyError(),
			Banned: slices.Contains(v.Banned, w.GetSpiffeId()),
		}
		if w.GetLastReport() > 0 {
			wl.LastReport = time.Unix(w.GetLastReport(), 0).UTC()
		}
		wl.State = "none"
		if w.GetSvidNotAfter() > 0 {
			wl.NotAfter = time.Unix(w.GetSvidNotAfter(), 0).UTC()
			wl.State = expiryState(wl.NotAfter, now, expiringSoon)
		}
		v.Workloads = append(v.Workloads, wl)
	}
	sort.SliceStable(v.Workloads, func(i, j int) bool { return v.Workloads[i].SPIFFEID < v.Workloads[j].SPIFFEID })
	ca := st.GetCa()
	for _, c := range ca.GetCertificates() {
		cc := CACert{Role: c.GetRole(), State: c.GetState(), Subject: c.GetSubject(), Serial: c.GetSerial(), Fingerprint: c.GetFingerprint(),
			NotBefore: time.Unix(c.GetNotBefore(), 0).UTC(), NotAfter: time.Unix(c.GetNotAfter(), 0).UTC()}
		// A CA certificate is "expiring" within a tenth of its life.
		cc.Expiry = expiryState(cc.NotAfter, now, cc.NotAfter.Sub(cc.NotBefore)/10)
		v.CA = append(v.CA, cc)
	}
	// The chain reads from the root down.
	sort.SliceStable(v.CA, func(i, j int) bool {
		a, b := v.CA[i], v.CA[j]
		if a.Role != b.Role {
			return a.Role == "root"
		}
		return stateOrder(a.State) < stateOrder(b.State)
	})
	if n := ca.GetNextIntermediateRotation(); n > 0 {
		v.NextRotation = time.Unix(n, 0).UTC()
	}
	v.Phase, v.PhaseDetail = ca.GetPhase(), ca.GetPhaseDetail()
	if v.Phase == "" {
		v.Phase = "idle"
	}
	for _, l := range ca.GetLagging() {
		v.Lagging = append(v.Lagging, l.GetSpiffeId()+": "+l.GetReason())
	}
	return v
}

func stateOrder(s string) int {
	switch s {
	case "active":
		return 0
	case "staged":
		return 1
	case "retiring":
		return 2
	}
	return 3
}

func expiryState(notAfter, now time.Time, soon time.Duration) string {
	switch left := notAfter.Sub(now); {
	case left <= 0:
		return "expired"
	case left <= soon:
		return "expiring"
	}
	return "valid"
}

package cli

import (
	"time"

	"meshward.dev/meshward/internal/probe"
	"meshward.dev/meshward/internal/scan"
)

// probeView is `probe -o json|yaml`: the report of internal/probe in the
// output convention (probe.Result's own json keys are camelCase).
type probeView struct {
	Findings []scan.Finding     `json:"findings"`
	Summary  scan.Summary       `json:"summary"`
	Endpoint *probeEndpointView `json:"endpoint"`
}

type probeCheckView struct {
	Accepted bool   `json:"accepted"`
	Detail   string `json:"detail"`
}

type probeEndpointView struct {
	Target              string             `json:"target"`
	ProbedAt            *time.Time         `json:"probed_at"`
	PlaintextHTTP       probeCheckView     `json:"plaintext_http"`
	PlaintextRaw        probeCheckView     `json:"plaintext_raw"`
	SpeaksTLS           bool               `json:"speaks_tls"`
	NoClientCert        probeCheckView     `json:"no_client_cert"`
	ClientCertRequested bool               `json:"client_cert_requested"`
	WithClientCert      *probeCheckView    `json:"with_client_cert"` // null without --client-cert
	Versions            []probeVersionView `json:"versions"`
	Chain               []probeCertView    `json:"chain"`
	Bundle              *probeBundleView   `json:"bundle"` // null without --bundle
	Notes               []string           `json:"notes"`
}

type probeVersionView struct {
	Name         string                 `json:"name"`
	ID           uint16                 `json:"id"`
	Accepted     bool                   `json:"accepted"`
	Detail       string                 `json:"detail"`
	CipherSuites []probeCipherSuiteView `json:"cipher_suites"`
}

type probeCipherSuiteView struct {
	Name string `json:"name"`
	ID   uint16 `json:"id"`
	Weak string `json:"weak"` // why it is weak; "" when it is not
}

type probeCertView struct {
	Subject            string     `json:"subject"`
	Issuer             string     `json:"issuer"`
	Serial             string     `json:"serial"`
	SHA256             string     `json:"sha256"`
	IsCA               bool       `json:"is_ca"`
	SelfSigned         bool       `json:"self_signed"`
	NotBefore          *time.Time `json:"not_before"`
	NotAfter           *time.Time `json:"not_after"`
	Lifetime           string     `json:"lifetime"`  // not_after - not_before
	Remaining          string     `json:"remaining"` // not_after - probed_at (negative when expired)
	KeyType            string     `json:"key_type"`
	KeyBits            int        `json:"key_bits"`
	KeyCurve           string     `json:"key_curve"`
	SignatureAlgorithm string     `json:"signature_algorithm"`
	SpiffeID           string     `json:"spiffe_id"`
	TrustDomain        string     `json:"trust_domain"`
	SpiffeIDProblem    string     `json:"spiffe_id_problem"`
	DNSNames           []string   `json:"dns_names"`
	IPAddresses        []string   `json:"ip_addresses"`
	URIs               []string   `json:"uris"`
	ParseError         string     `json:"parse_error"`
}

type probeBundleView struct {
	File     string `json:"file"`
	Verified bool   `json:"verified"`
	Detail   string `json:"detail"`
}

func newProbeView(r probe.Report) probeView {
	v := probeView{Findings: orEmpty(r.Findings), Summary: r.Summary}
	res := r.Endpoint
	if res == nil {
		return v
	}
	e := &probeEndpointView{
		Target: res.Target, ProbedAt: utcTime(res.ProbedAt),
		PlaintextHTTP: probeCheckView(res.PlaintextHTTP), PlaintextRaw: probeCheckView(res.PlaintextRaw),
		SpeaksTLS: res.SpeaksTLS, NoClientCert: probeCheckView(res.NoClientCert), ClientCertRequested: res.ClientCertRequested,
		Versions: []probeVersionView{}, Chain: []probeCertView{}, Notes: orEmpty(res.Notes),
	}
	if res.WithClientCert != nil {
		c := probeCheckView(*res.WithClientCert)
		e.WithClientCert = &c
	}
	if res.Bundle != nil {
		b := probeBundleView(*res.Bundle)
		e.Bundle = &b
	}
	for _, ver := range res.Versions {
		vv := probeVersionView{Name: ver.Name, ID: ver.ID, Accepted: ver.Accepted, Detail: ver.Detail, CipherSuites: []probeCipherSuiteView{}}
		for _, s := range ver.Suites {
			vv.CipherSuites = append(vv.CipherSuites, probeCipherSuiteView(s))
		}
		e.Versions = append(e.Versions, vv)
	}
	for _, c := range res.Chain {
		cv := probeCertView{
			Subject: c.Subject, Issuer: c.Issuer, Serial: c.Serial, SHA256: c.SHA256, IsCA: c.IsCA, SelfSigned: c.SelfSigned,
			NotBefore: utcTime(c.NotBefore), NotAfter: utcTime(c.NotAfter),
			KeyType: c.KeyType, KeyBits: c.KeyBits, KeyCurve: c.KeyCurve, SignatureAlgorithm: c.Signature,
			SpiffeID: c.SPIFFEID, TrustDomain: c.TrustDomain, SpiffeIDProblem: c.IDProblem,
			DNSNames: orEmpty(c.DNSNames), IPAddresses: orEmpty(c.IPs), URIs: orEmpty(c.URIs), ParseError: c.ParseError,
		}
		if c.ParseError == "" {
			cv.Lifetime = c.NotAfter.Sub(c.NotBefore).String()
			cv.Remaining = c.NotAfter.Sub(res.ProbedAt).String()
		}
		e.Chain = append(e.Chain, cv)
	}
	v.Endpoint = e
	return v
}

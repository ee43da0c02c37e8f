package probe

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"meshward.dev/meshward/internal/scan"
)

// Rule IDs and categories of probe findings (see docs/probe.md).
const (
	RulePlaintext       = "MW-PROBE-001" // mtls-disabled
	RuleNoClientCert    = "MW-PROBE-002" // mtls-permissive
	RuleLegacyVersion   = "MW-PROBE-003" // tls-legacy-version
	RuleWeakCipher      = "MW-PROBE-004" // tls-weak-cipher
	RuleNoTLS13         = "MW-PROBE-005" // tls13-missing
	RuleCertExpired     = "MW-PROBE-006" // cert-expired
	RuleCertNotYetValid = "MW-PROBE-007" // cert-not-yet-valid
	RuleCertExpiring    = "MW-PROBE-008" // cert-expiring-soon
	RuleCertLongLived   = "MW-PROBE-009" // cert-long-lived
	RuleCertWeakKey     = "MW-PROBE-010" // cert-weak-key
	RuleCertWeakSig     = "MW-PROBE-011" // cert-weak-signature
	RuleCertUntrusted   = "MW-PROBE-012" // cert-untrusted
	RuleNoSPIFFEID      = "MW-PROBE-013" // spiffe-id-missing
)

// Kind is the finding kind of every probe finding; the name is HOST:PORT.
const Kind = "Endpoint"

const (
	maxLeafLifetime = 397 * 24 * time.Hour
	expiringWithin  = 30 * 24 * time.Hour
)

// Evaluate judges a probe result at res.ProbedAt and returns its findings,
// worst first, at most one per category.
func Evaluate(res *Result) []scan.Finding {
	e := evaluator{res: res, now: res.ProbedAt}
	e.plaintext()
	if res.SpeaksTLS {
		e.clientAuth()
		e.versions()
		e.ciphers()
		e.chain()
	}
	slices.SortStableFunc(e.out, func(a, b scan.Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		return cmp.Compare(a.Rule, b.Rule)
	})
	return e.out
}

type evaluator struct {
	res *Result
	now time.Time
	out []scan.Finding
}

func (e *evaluator) add(rule, category string, sev scan.Severity, msg, fix string) {
	e.out = append(e.out, scan.Finding{
		Rule: rule, Category: category, Severity: sev,
		Kind: Kind, Name: e.res.Target,
		Message: msg, Remediation: fix,
	})
}

func (e *evaluator) plaintext() {
	r := e.res
	if !r.PlaintextHTTP.Accepted && !r.PlaintextRaw.Accepted {
		return
	}
	var how []string
	if r.PlaintextHTTP.Accepted {
		how = append(how, "plaintext HTTP: "+r.PlaintextHTTP.Detail)
	}
	if r.PlaintextRaw.Accepted {
		how = append(how, "plaintext bytes: "+r.PlaintextRaw.Detail)
	}
	sev, what := scan.SeverityCritical, "does not speak TLS and accepts plaintext"
	if r.SpeaksTLS {
		sev, what = scan.SeverityHigh, "accepts plaintext next to TLS"
	}
	e.add(RulePlaintext, "mtls-disabled", sev,
		fmt.Sprintf("%s %s (%s); anyone on the network can read and forge this traffic", r.Target, what, strings.Join(how, "; ")),
		"Serve this port only through the mesh's mTLS listener (meshward proxy inbound, Istio PeerAuthentication STRICT, Linkerd/Consul strict mTLS) and bind the plaintext app to loopback.")
}

func (e *evaluator) clientAuth() {
	r := e.res
	if !r.NoClientCert.Accepted {
		return
	}
	what := "it never asks for one"
	if r.ClientCertRequested {
		what = "it asks for one but does not require it (" + r.NoClientCert.Detail + ")"
	}
	e.add(RuleNoClientCert, "mtls-permissive", scan.SeverityHigh,
		fmt.Sprintf("%s completes TLS with a client that has no certificate: %s, so callers are not authenticated", r.Target, what),
		"Require and verify a client certificate from the mesh's trust bundle (tls.RequireAndVerifyClientCert; mTLS STRICT in the mesh).")
}

func (e *evaluator) versions() {
	var legacy []string
	tls13 := false
	for _, v := range e.res.Versions {
		if !v.Accepted {
			continue
		}
		if v.Name == "TLS 1.3" {
			tls13 = true
		}
		if v.Name == "TLS 1.0" || v.Name == "TLS 1.1" {
			legacy = append(legacy, v.Name)
		}
	}
	if len(legacy) > 0 {
		slices.Sort(legacy)
		e.add(RuleLegacyVersion, "tls-legacy-version", scan.SeverityHigh,
			fmt.Sprintf("%s accepts %s, deprecated by RFC 8996 (weak MAC and key derivation, downgrade attacks)", e.res.Target, strings.Join(legacy, " and ")),
			"Accept TLS 1.2 at least, and TLS 1.3 only between mesh sidecars (nginx: ssl_protocols TLSv1.3; Go: MinVersion tls.VersionTLS13).")
	}
	if !tls13 {
		e.add(RuleNoTLS13, "tls13-missing", scan.SeverityLow,
			fmt.Sprintf("%s does not accept TLS 1.3; meshward sidecars speak only TLS 1.3", e.res.Target),
			"Enable TLS 1.3.")
	}
}

func (e *evaluator) ciphers() {
	worst := 0
	var weak []string
	seen := map[string]bool{}
	for _, v := range e.res.Versions {
		for _, s := range v.Suites {
			reason, sev := suiteWeakness(s.ID)
			if sev == 0 || seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			worst = max(worst, sev)
			weak = append(weak, s.Name+" ("+reason+")")
		}
	}
	if len(weak) == 0 {
		return
	}
	slices.Sort(weak)
	sev := []scan.Severity{scan.SeverityInfo, scan.SeverityLow, scan.SeverityMedium, scan.SeverityHigh}[worst]
	e.add(RuleWeakCipher, "tls-weak-cipher", sev,
		fmt.Sprintf("%s accepts %d weak cipher suite(s): %s", e.res.Target, len(weak), strings.Join(weak, ", ")),
		"Offer only AEAD suites with ECDHE key exchange (TLS 1.3, or TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305).")
}

func (e *evaluator) chain() {
	r := e.res
	var expired, notYet, expiring, longLived, weakKeys, weakSigs []string
	for i, c := range r.Chain {
		if c.ParseError != "" {
			continue
		}
		name := certName(i, c)
		life := c.NotAfter.Sub(c.NotBefore)
		left := c.NotAfter.Sub(e.now)
		switch {
		case !e.now.Before(c.NotAfter):
			expired = append(expired, fmt.Sprintf("%s expired %s ago (%s)", name, formatDuration(-left), c.NotAfter.Format(time.RFC3339)))
		case e.now.Before(c.NotBefore):
			notYet = append(notYet, fmt.Sprintf("%s is valid only from %s", name, c.NotBefore.Format(time.RFC3339)))
		case left < min(expiringWithin, life/3):
			expiring = append(expiring, fmt.Sprintf("%s expires in %s (%s) of a %s lifetime", name, formatDuration(left), c.NotAfter.Format(time.RFC3339), formatDuration(life)))
		}
		if i == 0 && !c.IsCA && life > maxLeafLifetime {
			longLived = append(longLived, fmt.Sprintf("%s is valid for %s", name, formatDuration(life)))
		}
		if why := weakKey(c); why != "" {
			weakKeys = append(weakKeys, name+" has an "+why)
		}
		if weakSignature(c.Signature) && !(c.SelfSigned && c.IsCA) { //nolint:staticcheck // QF1001: "unless it is a self-signed root" reads clearer negated whole
			weakSigs = append(weakSigs, name+" is signed with "+c.Signature)
		}
	}
	list := func(s []string) string { return strings.Join(s, "; ") }
	if len(expired) > 0 {
		e.add(RuleCertExpired, "cert-expired", scan.SeverityCritical,
			fmt.Sprintf("%s presents an expired certificate: %s", r.Target, list(expired)),
			"Renew the certificate; check that rotation (the sidecar's renewal, cert-manager, the mesh CA) is running.")
	}
	if len(notYet) > 0 {
		e.add(RuleCertNotYetValid, "cert-not-yet-valid", scan.SeverityHigh,
			fmt.Sprintf("%s presents a certificate that is not valid yet: %s", r.Target, list(notYet)),
			"Check the clocks of the CA and of this host; issue certificates with a small backdated notBefore.")
	}
	if len(expiring) > 0 {
		e.add(RuleCertExpiring, "cert-expiring-soon", scan.SeverityMedium,
			fmt.Sprintf("%s presents a certificate close to expiry: %s", r.Target, list(expiring)),
			"Renew now and check why automatic renewal (due at half-life for mesh certificates) has not happened.")
	}
	if len(longLived) > 0 {
		e.add(RuleCertLongLived, "cert-long-lived", scan.SeverityMedium,
			fmt.Sprintf("%s presents a long-lived leaf certificate: %s (more than 397 days)", r.Target, list(longLived)),
			"Issue short-lived leaf certificates (mesh workloads: hours) and rotate them automatically.")
	}
	if len(weakKeys) > 0 {
		e.add(RuleCertWeakKey, "cert-weak-key", scan.SeverityHigh,
			fmt.Sprintf("%s presents a weak key: %s", r.Target, list(weakKeys)),
			"Use ECDSA P-256 (as meshward does) or RSA of at least 2048 bits.")
	}
	if len(weakSigs) > 0 {
		e.add(RuleCertWeakSig, "cert-weak-signature", scan.SeverityHigh,
			fmt.Sprintf("%s presents a certificate with a broken signature algorithm: %s", r.Target, list(weakSigs)),
			"Reissue the certificate signed with SHA-256 or better.")
	}
	if r.Bundle != nil && !r.Bundle.Verified {
		e.add(RuleCertUntrusted, "cert-untrusted", scan.SeverityHigh,
			fmt.Sprintf("%s presents a chain that does not verify against %s: %s", r.Target, r.Bundle.File, r.Bundle.Detail),
			"Serve a certificate issued by the mesh CA in the bundle (or check that the bundle is the current one).")
	}
	if len(r.Chain) > 0 && r.Chain[0].ParseError == "" && r.Chain[0].SPIFFEID == "" {
		leaf := r.Chain[0]
		sev, msg := scan.SeverityInfo, "has no SPIFFE ID (no URI SAN), so it is not a mesh workload identity"
		if leaf.IDProblem != "" {
			sev, msg = scan.SeverityLow, "is not a valid X.509-SVID: "+leaf.IDProblem
		}
		e.add(RuleNoSPIFFEID, "spiffe-id-missing", sev,
			fmt.Sprintf("%s presents a leaf certificate that %s", r.Target, msg),
			"Serve mesh traffic with an X.509-SVID: one URI SAN spiffe://<trust-domain>/ns/<namespace>/sa/<service>.")
	}
}

func certName(i int, c Cert) string {
	role := "intermediate"
	switch {
	case i == 0:
		role = "leaf"
	case c.SelfSigned:
		role = "root"
	}
	return fmt.Sprintf("%s #%d %q", role, i, c.Subject)
}

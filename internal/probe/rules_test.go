package probe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/testpki"
)

// tlsResult is a TLS 1.3-only, client-cert-requiring endpoint presenting
// chain, evaluated at now: only the chain rules can fire.
func tlsResult(now time.Time, chain ...Cert) *Result {
	return &Result{
		Target: "127.0.0.1:1", ProbedAt: now, SpeaksTLS: true,
		NoClientCert: Check{Detail: "refused"}, ClientCertRequested: true,
		Versions: []Version{{Name: "TLS 1.3", ID: 0x0304, Accepted: true}},
		Chain:    chain,
	}
}

func TestEvaluateChain(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "rules.test")
	id := (&url.URL{Scheme: "spiffe", Host: "rules.test", Path: "/ns/a/sa/b"})
	now := ca.Cert.NotBefore.Add(time.Hour) // inside the CAs' own validity
	leaf := func(nb, na time.Time, mut func(*testpki.Leaf)) Cert {
		l := testpki.Leaf{NotBefore: nb, NotAfter: na, URIs: []*url.URL{id}}
		if mut != nil {
			mut(&l)
		}
		return describeCert(ca.TLSCert(t, l).Leaf, now)
	}
	day := 24 * time.Hour
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inter := describeCert(ca.Intermediate(t).Cert, now)
	sha1Inter := inter
	sha1Inter.Signature = "ECDSA-SHA1"
	sha1Root := describeCert(ca.Cert, now)
	sha1Root.Signature = "SHA1-RSA" // a self-signed root's own signature does not matter

	for _, tc := range []struct {
		name  string
		chain []Cert
		want  []ruleSev
	}{
		{"fresh short-lived SVID", []Cert{leaf(now.Add(-30*time.Minute), now.Add(30*time.Minute), nil), inter}, []ruleSev{}},
		{"short-lived SVID past two thirds of its life", []Cert{leaf(now.Add(-50*time.Minute), now.Add(10*time.Minute), nil)},
			[]ruleSev{{RuleCertExpiring, "cert-expiring-soon", scan.SeverityMedium}}},
		{"90-day cert with 31 days left", []Cert{leaf(now.Add(-59*day), now.Add(31*day), nil)}, []ruleSev{}},
		{"1-year cert with 29 days left", []Cert{leaf(now.Add(-336*day), now.Add(29*day), nil)},
			[]ruleSev{{RuleCertExpiring, "cert-expiring-soon", scan.SeverityMedium}}},
		{"expired", []Cert{leaf(now.Add(-2*time.Hour), now.Add(-time.Hour), nil)},
			[]ruleSev{{RuleCertExpired, "cert-expired", scan.SeverityCritical}}},
		{"expires exactly now", []Cert{leaf(now.Add(-2*time.Hour), now, nil)},
			[]ruleSev{{RuleCertExpired, "cert-expired", scan.SeverityCritical}}},
		{"not yet valid", []Cert{leaf(now.Add(time.Hour), now.Add(2*time.Hour), nil)},
			[]ruleSev{{RuleCertNotYetValid, "cert-not-yet-valid", scan.SeverityHigh}}},
		{"398-day leaf", []Cert{leaf(now.Add(-day), now.Add(397*day), nil)},
			[]ruleSev{{RuleCertLongLived, "cert-long-lived", scan.SeverityMedium}}},
		{"397-day leaf", []Cert{leaf(now.Add(-day), now.Add(396*day), nil)}, []ruleSev{}},
		{"P-224 key", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), func(l *testpki.Leaf) { l.Key = p224 })},
			[]ruleSev{{RuleCertWeakKey, "cert-weak-key", scan.SeverityHigh}}},
		{"SHA-1 intermediate", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), nil), sha1Inter},
			[]ruleSev{{RuleCertWeakSig, "cert-weak-signature", scan.SeverityHigh}}},
		{"SHA-1 self-signed root sent along", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), nil), sha1Root}, []ruleSev{}},
		{"no URI SAN", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), func(l *testpki.Leaf) { l.URIs = nil })},
			[]ruleSev{{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityInfo}}},
		{"two URI SANs", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), func(l *testpki.Leaf) { l.URIs = append(l.URIs, id) })},
			[]ruleSev{{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityLow}}},
		{"URI SAN that is not SPIFFE", []Cert{leaf(now.Add(-time.Hour), now.Add(time.Hour), func(l *testpki.Leaf) {
			l.URIs = []*url.URL{{Scheme: "https", Host: "example.com"}}
		})}, []ruleSev{{RuleNoSPIFFEID, "spiffe-id-missing", scan.SeverityLow}}},
		{"unparsable certificate is skipped", []Cert{{ParseError: "x509: malformed"}}, []ruleSev{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ruleSevs(Evaluate(tlsResult(now, tc.chain...)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescribeChainAndVerify(t *testing.T) {
	t.Parallel()
	root := testpki.NewCA(t, "chain.test")
	inter := root.Intermediate(t)
	svid := inter.SVID(t, "spiffe://chain.test/ns/x/sa/y")
	now := svid.Certificates[0].NotBefore.Add(time.Minute)
	raw := [][]byte{svid.Certificates[0].Raw, svid.Certificates[1].Raw, []byte("junk")}
	certs, parsed := describeChain(raw, now)
	if len(certs) != 3 || len(parsed) != 2 || certs[2].ParseError == "" {
		t.Fatalf("describeChain: %d described, %d parsed, last %+v", len(certs), len(parsed), certs[2])
	}
	if certs[0].SPIFFEID != "spiffe://chain.test/ns/x/sa/y" || !certs[1].IsCA || certs[1].SelfSigned {
		t.Errorf("described chain = %+v", certs[:2])
	}
	for _, tc := range []struct {
		name    string
		bundle  []*x509.Certificate
		at      time.Time
		wantErr bool
	}{
		{"own root", []*x509.Certificate{root.Cert}, now, false},
		{"other root", []*x509.Certificate{testpki.NewCA(t, "chain.test").Cert}, now, true},
		{"after expiry", []*x509.Certificate{root.Cert}, svid.Certificates[0].NotAfter.Add(time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyChain(parsed, tc.bundle, tc.at)
			if (err != nil) != tc.wantErr {
				t.Errorf("verifyChain = %v, want error %v", err, tc.wantErr)
			}
		})
	}
	if err := verifyChain(nil, []*x509.Certificate{root.Cert}, now); err == nil {
		t.Error("verifyChain of an empty chain = nil")
	}
}

func TestSuiteWeakness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   uint16
		want int
	}{
		{0x0005, 3}, // TLS_RSA_WITH_RC4_128_SHA
		{0x000a, 3}, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
		{0x009c, 2}, // TLS_RSA_WITH_AES_128_GCM_SHA256
		{0xc013, 1}, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
		{0xc02f, 0}, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		{0xcca8, 0}, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
		{0x1301, 0}, // TLS_AES_128_GCM_SHA256
	} {
		if _, got := suiteWeakness(tc.id); got != tc.want {
			t.Errorf("suiteWeakness(%#04x) = %d, want %d", tc.id, got, tc.want)
		}
	}
}

package cert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"
	"time"

	"meshward.dev/meshward/internal/scan"
)

const (
	day          = 24 * time.Hour
	leafSoon     = 30 * day
	caSoon       = 60 * day // trust anchors and issuers need longer notice
	maxLeafLife  = 397 * day
	minRSABits   = 2048
	minCurveBits = 256
)

var (
	ruleExpired = scan.Rule{
		ID: "MW-CERT-001", Category: scan.CatCertExpired, Severity: scan.SeverityHigh, Mesh: scan.MeshAny,
		Title:       "certificate has expired",
		Description: "A certificate (the leaf of a key, or any certificate of a trust bundle) is past its notAfter: handshakes that rely on it fail, and teams under pressure turn verification off.",
		Remediation: "Issue a new certificate (or rotate the CA following the mesh's rotation procedure) and update the Secret or ConfigMap.",
	}
	ruleSoon = scan.Rule{
		ID: "MW-CERT-002", Category: scan.CatCertExpiringSoon, Severity: scan.SeverityMedium, Mesh: scan.MeshAny,
		Title:       "certificate expires soon",
		Description: "A leaf certificate expires within 30 days, or a CA (trust anchor or issuer) within 60 days: plan the rotation before the mesh loses mTLS.",
		Remediation: "Rotate now: issue a new certificate; for trust anchors add the new root to the bundle first, then switch issuers, then remove the old root.",
	}
	ruleLongLived = scan.Rule{
		ID: "MW-CERT-003", Category: scan.CatCertLongLived, Severity: scan.SeverityLow, Mesh: scan.MeshAny,
		Title:       "leaf certificate valid for more than 397 days",
		Description: "A leaf (CA:FALSE) certificate is valid for more than 397 days: a stolen key stays useful for over a year.",
		Remediation: "Issue leaf certificates for at most 90 days and automate renewal (cert-manager Certificate spec.duration: 2160h).",
	}
	ruleWeakKey = scan.Rule{
		ID: "MW-CERT-004", Category: scan.CatCertWeakKey, Severity: scan.SeverityHigh, Mesh: scan.MeshAny,
		Title:       "certificate uses a weak key",
		Description: "A certificate has an RSA key under 2048 bits or an elliptic-curve key under 256 bits (or DSA): its key can be broken or forged.",
		Remediation: "Reissue with an ECDSA P-256 (or RSA 3072) key.",
	}
	ruleWeakSig = scan.Rule{
		ID: "MW-CERT-005", Category: scan.CatCertWeakSignature, Severity: scan.SeverityHigh, Mesh: scan.MeshAny,
		Title:       "certificate signed with SHA-1 or MD5",
		Description: "A certificate is signed with SHA-1 or MD5, whose collisions let an attacker forge a certificate with the same signature.",
		Remediation: "Reissue the certificate with a SHA-256 (or stronger) signature.",
	}
	ruleCAKey = scan.Rule{
		ID: "MW-CERT-006", Category: scan.CatCAKeyExposed, Severity: scan.SeverityCritical, Mesh: scan.MeshAny,
		Title:       "CA private key stored where no CA key belongs",
		Description: "A CA private key is stored outside the place the control plane expects it (Istio istio-system/cacerts, Linkerd linkerd/linkerd-identity-issuer, Consul's CA key secret): whoever can read this object can mint identities for the whole mesh.",
		Remediation: "Remove the key from this object and rotate the CA; keep only the certificate here (ca.crt). Store CA keys only in the control plane's secret, or outside the cluster.",
	}
)

// expected places for CA keys: namespace/name.
var expectedCAKey = map[string]bool{
	"istio-system/cacerts":            true,
	"istio-system/istio-ca-secret":    true,
	"linkerd/linkerd-identity-issuer": true,
}

func expectedPlace(o *scan.Object) bool {
	if expectedCAKey[o.Namespace+"/"+o.Name] {
		return true
	}
	return strings.HasSuffix(o.Name, "consul-ca-key") || (o.Namespace == "consul" && strings.HasSuffix(o.Name, "-ca-key"))
}

// entry is one data key's PEM content.
type entry struct {
	key     string
	certs   []*x509.Certificate
	keys    []crypto.PublicKey // public halves of private keys; nil entry when unparsable
	rawKeys int
}

func dataEntries(o *scan.Object) []entry {
	var vals []struct{ k, v string }
	add := func(path string, b64 bool) {
		for k, v := range o.Map(path) {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if b64 {
				if dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), "")); err == nil {
					s = string(dec)
				}
			}
			vals = append(vals, struct{ k, v string }{k, s})
		}
	}
	if o.Kind == "Secret" {
		add("data", true)
		add("stringData", false)
	} else {
		add("data", false)
		add("binaryData", true)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].k < vals[j].k })
	var out []entry
	for _, kv := range vals {
		if !strings.Contains(kv.v, "-----BEGIN") {
			continue
		}
		e := entry{key: kv.k}
		rest := []byte(unindent(kv.v))
		for len(rest) > 0 {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			switch {
			case b.Type == "CERTIFICATE":
				if c, err := x509.ParseCertificate(b.Bytes); err == nil {
					e.certs = append(e.certs, c)
				}
			case strings.HasSuffix(b.Type, "PRIVATE KEY"):
				e.rawKeys++
				if pub := publicOf(b); pub != nil {
					e.keys = append(e.keys, pub)
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// unindent strips leading whitespace from every line, for PEM embedded in
// YAML strings (Linkerd's values, Helm output).
func unindent(s string) string {
	if !strings.Contains(s, "\n ") && !strings.Contains(s, "\n\t") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}

func publicOf(b *pem.Block) crypto.PublicKey {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil
	}
	if s, ok := k.(crypto.Signer); ok {
		return s.Public()
	}
	return nil
}

func bundleKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"root", "bundle", "anchor", "trust", "ca.crt", "ca-cert", "ca.pem", "ca-crt", "cacert"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func meshOf(o *scan.Object) string {
	switch {
	case strings.HasPrefix(o.Namespace, "istio") || o.Name == "cacerts" || o.Labels["istio/multiCluster"] != "":
		return scan.MeshIstio
	case strings.HasPrefix(o.Namespace, "linkerd") || strings.HasPrefix(o.Name, "linkerd"):
		return scan.MeshLinkerd
	case strings.HasPrefix(o.Namespace, "consul") || strings.HasPrefix(o.Name, "consul"):
		return scan.MeshConsul
	}
	return scan.MeshAny
}

func desc(c *x509.Certificate) string {
	name := c.Subject.CommonName
	if name == "" && len(c.URIs) > 0 {
		name = c.URIs[0].String()
	}
	if name == "" {
		name = c.Subject.String()
	}
	kind := "leaf"
	if c.IsCA {
		kind = "CA"
	}
	return fmt.Sprintf("%s certificate %q (serial %s)", kind, name, c.SerialNumber.Text(16))
}

func check(m *scan.Model) []scan.Finding {
	var out []scan.Finding
	now := m.Now
	for _, kind := range []string{"Secret", "ConfigMap"} {
		for _, o := range m.Kind(kind) {
			entries := dataEntries(o)
			if len(entries) == 0 {
				continue
			}
			mesh := meshOf(o)
			emit := func(r *scan.Rule, field, msg string) {
				f := r.Finding(o, field, msg)
				f.Mesh = mesh
				out = append(out, f)
			}
			done := map[string]bool{}
			once := func(r *scan.Rule, field, msg string) {
				if !done[r.ID] {
					done[r.ID] = true
					emit(r, field, msg)
				}
			}
			var caCerts []*x509.Certificate
			for _, e := range entries {
				for _, c := range e.certs {
					if c.IsCA {
						caCerts = append(caCerts, c)
					}
				}
			}
			for _, e := range entries {
				field := "data." + e.key
				if o.Lines[field] == 0 {
					field = "stringData." + e.key
				}
				checked := e.certs
				if !bundleKey(e.key) && len(checked) > 1 {
					checked = checked[:1]
				}
				for _, c := range checked {
					left := c.NotAfter.Sub(now)
					switch {
					case left < 0:
						once(&ruleExpired, field, fmt.Sprintf("%s %s/%s key %s holds %s that expired %s: peers relying on it fail or are told to skip verification.", o.Kind, o.Namespace, o.Name, e.key, desc(c), c.NotAfter.UTC().Format(time.RFC3339)))
					case (!c.IsCA && left <= leafSoon) || (c.IsCA && left <= caSoon):
						once(&ruleSoon, field, fmt.Sprintf("%s %s/%s key %s holds %s that expires %s (in %d days).", o.Kind, o.Namespace, o.Name, e.key, desc(c), c.NotAfter.UTC().Format(time.RFC3339), int(left/day)))
					}
				}
				for _, c := range e.certs {
					if !c.IsCA && c.NotAfter.Sub(c.NotBefore) > maxLeafLife {
						once(&ruleLongLived, field, fmt.Sprintf("%s %s/%s key %s holds %s valid for %d days: a stolen key stays useful that long.", o.Kind, o.Namespace, o.Name, e.key, desc(c), int(c.NotAfter.Sub(c.NotBefore)/day)))
					}
					if weak := weakKey(c.PublicKey); weak != "" {
						once(&ruleWeakKey, field, fmt.Sprintf("%s %s/%s key %s holds %s with a %s key: an attacker can factor or forge it and impersonate its holder.", o.Kind, o.Namespace, o.Name, e.key, desc(c), weak))
					}
					if weakSig(c.SignatureAlgorithm) {
						once(&ruleWeakSig, field, fmt.Sprintf("%s %s/%s key %s holds %s signed with %s: a colliding certificate can be forged.", o.Kind, o.Namespace, o.Name, e.key, desc(c), c.SignatureAlgorithm))
					}
				}
				if e.rawKeys > 0 && !expectedPlace(o) && isCAKey(e, caCerts) {
					once(&ruleCAKey, field, fmt.Sprintf("%s %s/%s key %s holds a CA private key outside the control plane's own secret: anyone who can read it can mint identities trusted by the whole mesh.", o.Kind, o.Namespace, o.Name, e.key))
				}
			}
		}
	}
	return out
}

// isCAKey reports whether a data key holds a CA's private key: its public
// half matches a CA certificate in the object, or the key is named as one.
func isCAKey(e entry, caCerts []*x509.Certificate) bool {
	for _, pub := range e.keys {
		for _, c := range caCerts {
			if samePublic(pub, c.PublicKey) {
				return true
			}
		}
	}
	k := strings.ToLower(e.key)
	return strings.HasPrefix(k, "ca") || strings.Contains(k, "root") || strings.Contains(k, "issuer") ||
		strings.Contains(k, "ca-key") || strings.Contains(k, "ca.key") || strings.Contains(k, "signing")
}

func samePublic(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	if x, ok := a.(eq); ok {
		return x.Equal(b)
	}
	return false
}

func weakKey(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Sprintf("%d-bit RSA", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < minCurveBits {
			return fmt.Sprintf("%d-bit EC (%s)", k.Curve.Params().BitSize, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case nil:
	default:
		return fmt.Sprintf("%T", pub)
	}
	return ""
}

func weakSig(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// Rules returns the certificate rules.
func Rules() []scan.Rule {
	fam := scan.NewFamily(check)
	return []scan.Rule{
		fam.Rule(ruleExpired), fam.Rule(ruleSoon), fam.Rule(ruleLongLived),
		fam.Rule(ruleWeakKey), fam.Rule(ruleWeakSig), fam.Rule(ruleCAKey),
	}
}

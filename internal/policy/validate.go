package policy

import (
	"fmt"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
)

// httpMethods are the methods a rule may name (RFC 9110 and PATCH).
var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

func (s *Set) parseMeshConfig(d *config.Document) config.ErrorList {
	errs := config.Errors(d.DecodeSpec(&s.Config))
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }
	if d.Metadata.Namespace != "" {
		add("metadata.namespace", "a MeshConfig is mesh-wide and has no namespace")
	}
	c := &s.Config
	meshTD := s.meshTrustDomain()
	if meshTD != "" && c.TrustDomain != "" && c.TrustDomain != meshTD {
		where := "the trust domain of the workloads it is for"
		if s.Mesh != nil {
			where = s.Mesh.File
		}
		add("spec.trustDomain", "%q differs from the mesh's trust domain %q (%s)", c.TrustDomain, meshTD, where)
	}
	c.applyDefaults(meshTD)
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil || c.TrustDomain != strings.ToLower(c.TrustDomain) {
		add("spec.trustDomain", "%q is not a valid trust domain (lower-case DNS name such as shop.local)", c.TrustDomain)
	}
	switch c.MTLS {
	case MTLSStrict:
		if c.PermissiveUntil != "" {
			add("spec.permissiveUntil", "only applies to mtls: permissive")
		}
	case MTLSPermissive:
		if c.PermissiveUntil == "" {
			add("spec.mtls", "permissive needs an expiry date in spec.permissiveUntil (RFC 3339, such as 2026-01-31T00:00:00Z)")
		} else if _, err := time.Parse(time.RFC3339, c.PermissiveUntil); err != nil {
			add("spec.permissiveUntil", "%q is not an RFC 3339 time (such as 2026-01-31T00:00:00Z)", c.PermissiveUntil)
		}
	default:
		add("spec.mtls", "%q is not one of strict, permissive", c.MTLS)
	}
	if c.DefaultAction != ActionDeny && c.DefaultAction != ActionAllow {
		add("spec.defaultAction", "%q is not one of deny, allow", c.DefaultAction)
	}
	if c.PathNormalization != PathStrict && c.PathNormalization != PathPermissive {
		add("spec.pathNormalization", "%q is not one of strict, permissive", c.PathNormalization)
	}
	cert := c.Certificates
	switch {
	case cert.WorkloadTTL < time.Minute || cert.WorkloadTTL > MaxWorkloadTTL:
		add("spec.certificates.workloadTTL", "%s is out of range (1m to 720h)", cert.WorkloadTTL)
	case cert.IntermediateTTL <= cert.WorkloadTTL:
		add("spec.certificates.intermediateTTL", "%s must be longer than workloadTTL %s", cert.IntermediateTTL, cert.WorkloadTTL)
	case cert.RootTTL <= cert.IntermediateTTL:
		add("spec.certificates.rootTTL", "%s must be longer than intermediateTTL %s", cert.RootTTL, cert.IntermediateTTL)
	}
	return errs
}

// mtlsPermissive reports whether permissive mTLS is in force at now.
func (c *MeshConfig) mtlsPermissive(now time.Time) bool {
	if c.MTLS != MTLSPermissive {
		return false
	}
	until, err := time.Parse(time.RFC3339, c.PermissiveUntil)
	return err == nil && now.Before(until)
}

func (s *Set) parseAccessPolicy(d *config.Document) (*AccessPolicy, config.ErrorList) {
	p := &AccessPolicy{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, doc: d}
	derrs := config.Errors(d.DecodeSpec(&p.Spec))
	var errs config.ErrorList
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }

	if p.Spec.Mode == "" {
		p.Spec.Mode = ModeEnforce
	}
	switch t := p.Spec.Target; {
	case t == "":
		add("spec.target", "is required: the service this policy protects")
	case config.ValidName(t) != nil:
		add("spec.target", "%v", config.ValidName(t))
	case s.services != nil && !s.services.has(p.Namespace, t):
		add("spec.target", "%s", s.services.unknown(p.Namespace, t))
	}
	if p.Spec.Mode != ModeEnforce && p.Spec.Mode != ModeAudit {
		add("spec.mode", "%q is not one of enforce, audit", p.Spec.Mode)
	}
	names := map[string]int{}
	for i := range p.Spec.Rules {
		r := &p.Spec.Rules[i]
		f := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case r.Name == "":
			add(f+".name", "is required: decisions and audit logs name the rule")
		case config.ValidName(r.Name) != nil:
			add(f+".name", "%v", config.ValidName(r.Name))
		default:
			if j, dup := names[r.Name]; dup {
				add(f+".name", "%q is already the name of spec.rules[%d]", r.Name, j)
			}
			names[r.Name] = i
		}
		if len(r.From) == 0 {
			add(f+".from", "is required: list the callers ({service: S}, {identity: spiffe://...} or {namespace: N}; {namespace: \"*\"} is any workload)")
		}
		for j, src := range r.From {
			errs = append(errs, s.checkSource(d, fmt.Sprintf("%s.from[%d]", f, j), p.Namespace, src)...)
		}
		for j := range r.To {
			errs = append(errs, checkOperation(d, fmt.Sprintf("%s.to[%d]", f, j), &r.To[j])...)
		}
		if r.When != "" {
			if _, err := s.condition(r.When); err != nil {
				add(f+".when", "invalid CEL condition: %v", err)
			}
		}
	}
	all := derrs.Merge(errs)
	if len(all) > 0 {
		return nil, all
	}
	return p, nil
}

func (s *Set) checkSource(d *config.Document, f, namespace string, src Source) config.ErrorList {
	var errs config.ErrorList
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }
	set := 0
	for _, v := range []string{src.Service, src.Identity, src.Namespace} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		add(f, "set exactly one of service, identity, namespace")
		return errs
	}
	switch {
	case src.Service != "":
		if err := config.ValidName(src.Service); err != nil {
			add(f+".service", "%v", err)
		} else if s.services != nil && !s.services.has(namespace, src.Service) {
			add(f+".service", "%s", s.services.unknown(namespace, src.Service))
		}
	case src.Identity != "":
		id, err := spiffeid.FromString(src.Identity)
		if err != nil {
			add(f+".identity", "%q is not a SPIFFE ID (spiffe://trust-domain/ns/N/sa/S): %v", src.Identity, err)
		} else if id.String() != src.Identity {
			add(f+".identity", "%q is not in canonical form (%s)", src.Identity, id)
		}
	default:
		if src.Namespace != "*" {
			if err := config.ValidName(src.Namespace); err != nil {
				add(f+".namespace", "%v (or \"*\" for any namespace)", err)
			}
		}
	}
	return errs
}

func checkOperation(d *config.Document, f string, op *Operation) config.ErrorList {
	var errs config.ErrorList
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }
	ports := map[int]bool{}
	for i, port := range op.Ports {
		if port < 1 || port > 65535 {
			add(fmt.Sprintf("%s.ports[%d]", f, i), "%d is not a port (1-65535)", port)
		} else if ports[port] {
			add(fmt.Sprintf("%s.ports[%d]", f, i), "%d is listed twice", port)
		}
		ports[port] = true
	}
	methods := map[string]bool{}
	for i, m := range op.Methods {
		field := fmt.Sprintf("%s.methods[%d]", f, i)
		switch {
		case contains(httpMethods, m):
			if methods[m] {
				add(field, "%q is listed twice", m)
			}
			methods[m] = true
		case contains(httpMethods, strings.ToUpper(m)):
			add(field, "%q: methods are case-sensitive, write %q", m, strings.ToUpper(m))
		default:
			add(field, "%q is not an HTTP method (one of %s)", m, strings.Join(httpMethods, ", "))
		}
	}
	paths := map[string]bool{}
	for i, p := range op.Paths {
		field := fmt.Sprintf("%s.paths[%d]", f, i)
		if err := checkPathPattern(p); err != nil {
			add(field, "%q %v", p, err)
		} else if paths[p] {
			add(field, "%q is listed twice", p)
		}
		paths[p] = true
	}
	keys := make([]string, 0, len(op.Headers))
	for k := range op.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	canon := map[string]string{}
	for _, k := range keys {
		field := f + ".headers." + k
		if !validHeaderName(k) {
			add(field, "%q is not a valid HTTP header name", k)
			continue
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if other, dup := canon[ck]; dup {
			add(field, "same header as %q (names are case-insensitive)", other)
		}
		canon[ck] = k
		if v := op.Headers[k]; strings.ContainsAny(v, "\r\n\x00") {
			add(field, "value contains a control character")
		}
	}
	return errs
}

// checkPathPattern checks a rule path: an exact normalized path, or a prefix
// ending in "/*".
func checkPathPattern(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with / (an exact path, or a prefix ending in /*)")
	}
	base := p
	if strings.HasSuffix(p, "/*") {
		base = strings.TrimSuffix(p, "*")
	}
	if strings.Contains(base, "*") {
		return fmt.Errorf("'*' is only allowed as a final /* (prefix match)")
	}
	if strings.Contains(base, "?") {
		return fmt.Errorf("paths match without the query string; remove '?...'")
	}
	n, err := NormalizePath(base)
	if err != nil {
		return fmt.Errorf("cannot match any request: %w", err)
	}
	if n != base {
		return fmt.Errorf("is not normalized: requests are matched in normalized form, write %q", n+strings.TrimPrefix(p, base))
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isUnreserved(c) && strings.IndexByte("!#$%&'*+^`|", c) < 0 {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

package policytest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/policy"
)

// RuleInvalidPath is the deciding "rule" of a case whose path the sidecar
// rejects with 400 before any policy runs.
const RuleInvalidPath = "invalid-path"

// Spec is a PolicyTest's spec.
type Spec struct {
	Cases []Case `yaml:"cases"`
}

// Case is one request and the decision expected for it.
type Case struct {
	Name string `yaml:"name" json:"name"`
	// From is a service name (in Namespace) or a SPIFFE ID.
	From string `yaml:"from" json:"from"`
	// To is the target service, in Namespace.
	To string `yaml:"to" json:"to"`
	// Namespace defaults to the test's metadata.namespace, then "default".
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// Port defaults to the target's port in the mesh, when one is given.
	Port int `yaml:"port" json:"port"`
	// Request is the HTTP request; without it the case is an L4 connection.
	Request *Request `yaml:"request" json:"request,omitempty"`
	// Expect is allow or deny: the policy's verdict (in audit mode, what
	// enforcement would do).
	Expect string `yaml:"expect" json:"expect"`
	// Rule, when set, must be the deciding rule (or default-deny,
	// default-allow, invalid-path).
	Rule string `yaml:"rule" json:"rule,omitempty"`
}

// Request is the L7 part of a case.
type Request struct {
	Method  string            `yaml:"method" json:"method"`
	Path    string            `yaml:"path" json:"path"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
}

// Result is the outcome of one case.
type Result struct {
	Test    string `json:"test"`
	Case    string `json:"case"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Pass    bool   `json:"pass"`
	Expect  string `json:"expect"`
	Got     string `json:"got"`
	Policy  string `json:"policy,omitempty"`
	Rule    string `json:"rule"`
	Mode    string `json:"mode,omitempty"`
	Message string `json:"message,omitempty"`
}

// RuleRef names a rule and where it is defined.
type RuleRef struct {
	Policy string `json:"policy"`
	Rule   string `json:"rule"`
	File   string `json:"file"`
	Line   int    `json:"line"`
}

// Report is the outcome of a run.
type Report struct {
	Version string   `json:"policyVersion"`
	Results []Result `json:"results"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	// Rules counts the rules of the set; Uncovered are those no case was
	// decided by.
	Rules     int       `json:"rules"`
	Uncovered []RuleRef `json:"uncovered"`
}

// OK reports whether every case passed.
func (r *Report) OK() bool { return r.Failed == 0 }

type decodedTest struct {
	doc  *config.Document
	spec Spec
}

// Run decodes the PolicyTest documents of set and runs every case on e. The
// error is a config.ErrorList when a PolicyTest itself is invalid; no case
// runs then.
func Run(set *policy.Set, e *policy.Engine) (*Report, error) {
	if set == nil || e == nil {
		return nil, errors.New("policytest: nil set or engine")
	}
	var tests []decodedTest
	var errs config.ErrorList
	for _, d := range set.Documents {
		if d.Kind != policy.KindPolicyTest {
			continue
		}
		t := decodedTest{doc: d}
		derrs := config.Errors(d.DecodeSpec(&t.spec))
		errs = append(errs, derrs.Merge(validate(set, d, &t.spec))...)
		tests = append(tests, t)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	td, err := spiffeid.TrustDomainFromString(set.Config.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("policytest: %w", err)
	}
	rep := &Report{Version: e.Version(), Results: []Result{}, Uncovered: []RuleRef{}}
	covered := map[string]bool{}
	for _, t := range tests {
		for i := range t.spec.Cases {
			c := &t.spec.Cases[i]
			res := runCase(set, e, td, t.doc, c)
			res.File, res.Line = t.doc.File, t.doc.LineOf(fmt.Sprintf("spec.cases[%d]", i))
			if res.Policy != "" {
				covered[res.Policy+"/"+res.Rule] = true
			}
			if res.Pass {
				rep.Passed++
			} else {
				rep.Failed++
			}
			rep.Results = append(rep.Results, res)
		}
	}
	for _, p := range set.Policies {
		for i, r := range p.Spec.Rules {
			rep.Rules++
			if !covered[p.Name+"/"+r.Name] {
				rep.Uncovered = append(rep.Uncovered, RuleRef{Policy: p.Name, Rule: r.Name, File: p.File(),
					Line: p.Doc().LineOf(fmt.Sprintf("spec.rules[%d]", i))})
			}
		}
	}
	return rep, nil
}

func namespaceOf(d *config.Document, c *Case) string {
	switch {
	case c.Namespace != "":
		return c.Namespace
	case d.Metadata.Namespace != "":
		return d.Metadata.Namespace
	}
	return config.DefaultNamespace
}

func validate(set *policy.Set, d *config.Document, s *Spec) config.ErrorList {
	var errs config.ErrorList
	add := func(field, format string, args ...any) { errs = append(errs, d.Errorf(field, format, args...)) }
	if len(s.Cases) == 0 {
		add("spec.cases", "at least one case is required")
	}
	names := map[string]int{}
	for i := range s.Cases {
		c := &s.Cases[i]
		f := fmt.Sprintf("spec.cases[%d]", i)
		if c.Name == "" {
			add(f+".name", "is required")
		} else if j, dup := names[c.Name]; dup {
			add(f+".name", "%q is already the name of spec.cases[%d]", c.Name, j)
		}
		names[c.Name] = i
		if c.From == "" {
			add(f+".from", "is required: a service name or a SPIFFE ID")
		} else if strings.HasPrefix(c.From, "spiffe://") {
			if _, err := spiffeid.FromString(c.From); err != nil {
				add(f+".from", "%q is not a SPIFFE ID: %v", c.From, err)
			}
		} else if err := config.ValidName(c.From); err != nil {
			add(f+".from", "%v (or a SPIFFE ID)", err)
		}
		if c.To == "" {
			add(f+".to", "is required: the target service")
		} else if err := config.ValidName(c.To); err != nil {
			add(f+".to", "%v", err)
		}
		ns := namespaceOf(d, c)
		if set.Mesh != nil && c.To != "" {
			svc, ok := set.Mesh.Service(c.To)
			if !ok || svc.Namespace != ns {
				add(f+".to", "%s/%s is not a service of mesh %s", ns, c.To, set.Mesh.Name)
			} else if c.Port == 0 {
				c.Port = svc.Port
			}
		}
		if c.Port == 0 && set.Mesh == nil {
			add(f+".port", "is required (or give the mesh file so the service's port is known)")
		} else if c.Port < 0 || c.Port > 65535 {
			add(f+".port", "%d is not a port", c.Port)
		}
		if c.Expect != "allow" && c.Expect != "deny" {
			add(f+".expect", "%q is not one of allow, deny", c.Expect)
		}
		if r := c.Request; r != nil {
			if r.Method == "" {
				add(f+".request.method", "is required")
			}
			if r.Path == "" {
				add(f+".request.path", "is required")
			}
		}
	}
	return errs
}

func runCase(set *policy.Set, e *policy.Engine, td spiffeid.TrustDomain, d *config.Document, c *Case) Result {
	res := Result{Test: d.Metadata.Name, Case: c.Name, Expect: c.Expect}
	ns := namespaceOf(d, c)
	var src spiffeid.ID
	var err error
	if strings.HasPrefix(c.From, "spiffe://") {
		src, err = spiffeid.FromString(c.From)
	} else {
		src, err = set.ServiceID(td, ns, c.From)
	}
	if err != nil {
		res.Got, res.Message = "error", err.Error()
		return res
	}
	req := &policy.Request{Source: src, Destination: policy.Destination{Service: c.To, Namespace: ns, Port: c.Port}}
	var dec policy.Decision
	decided := false
	if c.Request != nil {
		path, perr := e.NormalizePath(c.Request.Path)
		if perr != nil {
			dec = policy.Decision{Rule: RuleInvalidPath, Mode: policy.ModeEnforce}
			res.Message = "rejected with 400: " + perr.Error()
			decided = true
		} else {
			h := http.Header{}
			for k, v := range c.Request.Headers {
				h.Set(k, v)
			}
			req.HTTP = &policy.HTTPRequest{Method: c.Request.Method, Path: path, Headers: h}
		}
	}
	if !decided {
		dec = e.Decide(req)
	}
	res.Policy, res.Rule, res.Mode = dec.Policy, dec.Rule, dec.Mode
	res.Got = "deny"
	if dec.Allow && !dec.WouldDeny {
		res.Got = "allow"
	}
	res.Pass = res.Got == c.Expect
	if res.Pass && c.Rule != "" && c.Rule != dec.Rule {
		res.Pass = false
		res.Message = fmt.Sprintf("decided by %s, want %s", dec.Rule, c.Rule)
	}
	if dec.WouldDeny {
		res.Message = strings.TrimSpace(res.Message + " (audit mode: allowed, would deny)")
	}
	return res
}

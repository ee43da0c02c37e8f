package migrate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/scan"
)

// DefaultTrustDomain is the trust domain of the generated policies when
// Options.TrustDomain is empty: meshward's own default.
const DefaultTrustDomain = "meshward.local"

// defaultPort is the port PolicyTest cases use for a workload whose port
// the input does not show.
const defaultPort = 8080

// Options tune Import.
type Options struct {
	// TrustDomain of the generated identities and MeshConfig.
	TrustDomain string
}

// Severity of a Note.
const (
	// Narrowed: the construct could not be translated exactly; the import
	// allows less than the source did.
	Narrowed = "narrowed"
	// Info: translated exactly, but worth knowing.
	Info = "info"
)

// Note is one construct of the input and what the import did with it.
type Note struct {
	Severity string `json:"severity"` // Narrowed or Info
	Object   string `json:"object"`   // Kind/namespace/name
	File     string `json:"file"`
	Line     int    `json:"line"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"` // the construct
	Instead  string `json:"instead"` // what was done instead
}

func (n Note) String() string {
	pos := n.File
	if n.Line > 0 {
		pos = fmt.Sprintf("%s:%d", n.File, n.Line)
	}
	f := ""
	if n.Field != "" {
		f = " " + n.Field
	}
	return fmt.Sprintf("%-8s %s %s%s: %s; %s", n.Severity, pos, n.Object, f, n.Message, n.Instead)
}

// Result is what Import produces.
type Result struct {
	// Files are the generated policy files, named relative to the output
	// directory, sorted.
	Files []File
	// Notes list every construct not translated exactly (Narrowed) and
	// the exact translations worth knowing (Info), sorted by file and line.
	Notes []Note
	// Tests counts the generated PolicyTest cases.
	Tests int
}

// File is one generated file.
type File struct {
	Name string
	Data []byte
}

// Exact reports whether nothing was narrowed.
func (r *Result) Exact() bool {
	for _, n := range r.Notes {
		if n.Severity == Narrowed {
			return false
		}
	}
	return true
}

// ErrNothing is returned when the input holds no authorization Import
// reads.
var ErrNothing = errors.New("no Istio AuthorizationPolicy or PeerAuthentication, Consul ServiceIntentions or Linkerd Server or authorization in the input")

// importer holds the state of one Import.
type importer struct {
	td      string
	tdID    spiffeid.TrustDomain
	m       *scan.Model
	targets map[string]*target // by namespace/name
	notes   []Note
}

// target is one protected workload and the rules it gets.
type target struct {
	namespace, name string
	port            int
	origins         []string // the source objects, for the file comment
	rules           []*rule
	// denySamples are requests the source denies and the import must too
	// (from DENY rules carved out of its allows), for the test cases.
	denySamples []sample
}

// rule is one AccessPolicy rule with the requests that test it.
type rule struct {
	name   string
	from   []source
	to     []operation
	when   []string // CEL conjuncts
	origin string
	// except are sources the rule's when excludes (probes avoid them).
	except []string
	// hint is a request the source rule matches, for the test cases.
	hint sample
}

type source struct {
	Service   string `yaml:"service,omitempty"`
	Identity  string `yaml:"identity,omitempty"`
	Namespace string `yaml:"namespace,omitempty"`
}

type operation struct {
	Ports   []int             `yaml:"ports,omitempty,flow"`
	Methods []string          `yaml:"methods,omitempty,flow"`
	Paths   []string          `yaml:"paths,omitempty,flow"`
	Headers map[string]string `yaml:"headers,omitempty"`
}

// sample is a concrete request for a test case.
type sample struct {
	from   string // service name or SPIFFE ID
	port   int
	method string
	path   string
	header map[string]string
}

// Import translates the authorization in objs.
func Import(objs []*scan.Object, opts Options) (*Result, error) {
	td := opts.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	tdID, err := spiffeid.TrustDomainFromString(td)
	if err != nil || tdID.Name() != td {
		return nil, fmt.Errorf("trust domain %q: want a lower-case DNS name such as %s", td, DefaultTrustDomain)
	}
	im := &importer{td: td, tdID: tdID, m: scan.NewModel(objs, time.Time{}), targets: map[string]*target{}}
	istio := im.istio()
	consul := im.consul()
	linkerd := im.linkerd()
	if !istio && !consul && !linkerd {
		return nil, ErrNothing
	}
	return im.result()
}

func (im *importer) note(kind string, o *scan.Object, field, msg, instead string) {
	n := Note{Severity: kind, Message: msg, Instead: instead, Field: field}
	if o != nil {
		n.Object, n.File, n.Line = o.Ref().String(), o.File, o.LineOf(field)
	} else {
		n.Object = "(input)"
	}
	im.notes = append(im.notes, n)
}

// target returns the target ns/name, or nil (with a note on o) when they
// are not valid meshward names.
func (im *importer) target(o *scan.Object, ns, name string) *target {
	if config.ValidName(ns) != nil || config.ValidName(name) != nil {
		im.noteOnce(Narrowed, o, "", fmt.Sprintf("%s/%s is not a valid meshward service name (lower-case letters, digits and '-', at most 63)", ns, name),
			"not translated: meshward denies calls to it until a policy allows them")
		return nil
	}
	k := ns + "/" + name
	t := im.targets[k]
	if t == nil {
		t = &target{namespace: ns, name: name, port: defaultPort}
		im.targets[k] = t
	}
	return t
}

func (t *target) addOrigin(o *scan.Object) {
	s := fmt.Sprintf("%s (%s:%d)", o.Ref(), o.File, o.Line)
	for _, x := range t.origins {
		if x == s {
			return
		}
	}
	t.origins = append(t.origins, s)
}

// addRule appends r with a name unique in t.
func (t *target) addRule(r *rule) {
	base := safeName(r.name)
	name := base
	for i := 2; t.hasRule(name); i++ {
		name = fmt.Sprintf("%s-%d", trim(base, 60), i)
	}
	r.name = name
	t.rules = append(t.rules, r)
}

func (t *target) hasRule(name string) bool {
	for _, r := range t.rules {
		if r.name == name {
			return true
		}
	}
	return false
}

// safeName turns s into a meshward name (lower-case letters, digits, '-',
// at most 63).
func safeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(trim(b.String(), 63), "-")
	if out == "" || config.ValidName(out) != nil {
		return "rule"
	}
	return out
}

func trim(s string, n int) string {
	if len(s) > n {
		return strings.TrimRight(s[:n], "-")
	}
	return s
}

func sortNotes(ns []Note) {
	sort.SliceStable(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Message < b.Message
	})
}

// sortedTargets returns the targets by namespace and name.
func (im *importer) sortedTargets() []*target {
	out := make([]*target, 0, len(im.targets))
	for _, t := range im.targets {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].namespace != out[j].namespace {
			return out[i].namespace < out[j].namespace
		}
		return out[i].name < out[j].name
	})
	return out
}

package policy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"meshward.dev/meshward/internal/config"
)

// File is one policy file: its name (used in error messages) and contents.
// The control plane pushes policy to sidecars as files.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// Options tune Parse and Compile.
type Options struct {
	// Mesh, when set, is the mesh the policies are for: policy targets must
	// be its services, and the trust domains must agree.
	Mesh *config.Mesh
	// Now is the clock for CEL's `time` and the permissive-mTLS expiry;
	// time.Now when nil.
	Now func() time.Time
	// TrustDomain, when Mesh is not set, is the trust domain the policies
	// are for (the control plane's, or a sidecar's own): a MeshConfig must
	// agree with it, and without a MeshConfig it is the default.
	TrustDomain string
	// Services, when Mesh is not set, are the services that exist
	// ("namespace/name", such as the control plane's registry): targets and
	// sources must be among them. nil checks no names.
	Services []string
	// ServicesFrom names where Services came from, for error messages
	// ("the control plane's registry").
	ServicesFrom string
}

// Set is a parsed and validated policies directory.
type Set struct {
	Config   MeshConfig
	Policies []*AccessPolicy // sorted by namespace, then name
	// Documents are all documents read, including PolicyTests, which
	// package policytest decodes.
	Documents []*config.Document
	Mesh      *config.Mesh

	configDoc   *config.Document
	now         func() time.Time
	conds       map[string]*condition // compiled `when`s by source text
	trustDomain string                // Options.TrustDomain
	services    *serviceNames         // the known services; nil: unchecked
}

// meshTrustDomain is the trust domain the policies must be for, if known.
func (s *Set) meshTrustDomain() string {
	if s.Mesh != nil {
		return s.Mesh.TrustDomain
	}
	return s.trustDomain
}

// condition compiles a `when` once per distinct text.
func (s *Set) condition(src string) (*condition, error) {
	if c, ok := s.conds[src]; ok {
		return c, nil
	}
	c, err := compileCondition(src)
	if err != nil {
		return nil, err
	}
	if s.conds == nil {
		s.conds = map[string]*condition{}
	}
	s.conds[src] = c
	return c, nil
}

// ConfigDoc is the MeshConfig's document, or nil when the defaults apply.
func (s *Set) ConfigDoc() *config.Document { return s.configDoc }

// ReadDir reads the *.yaml and *.yml files under dir (recursively, skipping
// dot-directories) in lexical order. File names are dir joined with the
// path inside it, as errors should show them.
func ReadDir(dir string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > config.MaxFileSize {
			return &config.Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", config.MaxFileSize)}
		}
		data, err := os.ReadFile(path) //nolint:gosec // reading the user's policy directory
		if err != nil {
			return err
		}
		files = append(files, File{Name: path, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// Compile parses, validates and compiles files into an Engine. A set with
// any error is rejected whole; the error is a config.ErrorList naming every
// problem by file, line and field.
func Compile(files []File, opts Options) (*Engine, error) {
	s, err := Parse(files, opts)
	if err != nil {
		return nil, err
	}
	return s.Compile()
}

// Parse decodes and validates files without compiling them into an Engine.
// The error is a config.ErrorList.
func Parse(files []File, opts Options) (*Set, error) {
	s := &Set{Mesh: opts.Mesh, now: opts.Now, trustDomain: opts.TrustDomain, services: knownServices(opts)}
	if s.now == nil {
		s.now = time.Now
	}
	var errs config.ErrorList
	seen := map[string]*config.Document{} // kind/namespace/name -> first document
	for _, f := range files {
		docs, err := config.ParseFile(f.Name, f.Data)
		errs = append(errs, config.Errors(err)...)
		for _, d := range docs {
			if d.Kind == KindAccessPolicy && d.Metadata.Namespace == "" {
				d.Metadata.Namespace = config.DefaultNamespace
			}
			key := d.Kind + "/" + d.Metadata.Namespace + "/" + d.Metadata.Name
			if first, dup := seen[key]; dup {
				errs = append(errs, d.Errorf("metadata.name", "duplicate %s %q (first defined at %s:%d)", d.Kind, d.Metadata.Name, first.File, first.Line))
				continue
			}
			seen[key] = d
			s.Documents = append(s.Documents, d)
		}
	}
	// The MeshConfig first: policies are validated against its trust domain.
	for _, d := range s.Documents {
		if d.Kind != KindMeshConfig {
			continue
		}
		if s.configDoc != nil {
			errs = append(errs, d.Errorf("kind", "a second MeshConfig (the first is %s:%d); there is one per mesh", s.configDoc.File, s.configDoc.Line))
			continue
		}
		s.configDoc = d
		errs = append(errs, s.parseMeshConfig(d)...)
	}
	if s.configDoc == nil {
		s.Config.applyDefaults(s.meshTrustDomain())
	}
	targets := map[string]*AccessPolicy{}
	for _, d := range s.Documents {
		switch d.Kind {
		case KindMeshConfig, KindPolicyTest:
		case KindAccessPolicy:
			p, perrs := s.parseAccessPolicy(d)
			errs = append(errs, perrs...)
			if p == nil {
				continue
			}
			key := p.Namespace + "/" + p.Spec.Target
			if other, dup := targets[key]; dup && p.Spec.Target != "" {
				errs = append(errs, d.Errorf("spec.target", "%s/%s already has a policy (%s at %s:%d): one AccessPolicy per service, merge the rules",
					p.Namespace, p.Spec.Target, other.Name, other.File(), other.Line()))
				continue
			}
			targets[key] = p
			s.Policies = append(s.Policies, p)
		default:
			errs = append(errs, d.Errorf("kind", "%q is not one of %s, %s, %s", d.Kind, KindMeshConfig, KindAccessPolicy, KindPolicyTest))
		}
	}
	sort.Slice(s.Policies, func(i, j int) bool {
		a, b := s.Policies[i], s.Policies[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// APIVersion is the only apiVersion meshward reads.
const APIVersion = "meshward.dev/v1"

// MaxFileSize bounds what ReadFile-style callers should accept; larger
// files are rejected before parsing.
const MaxFileSize = 4 << 20

// Metadata is the envelope's metadata block.
type Metadata struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Document is one YAML document of a file: the decoded envelope plus the
// still-encoded spec, which its kind's package decodes with DecodeSpec.
type Document struct {
	File       string
	Line       int // line of the document's first key
	APIVersion string
	Kind       string
	Metadata   Metadata

	spec  *yaml.Node
	lines map[string]int // field path -> line, filled while decoding
}

// envelope is the top level of every document.
type envelope struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Metadata   Metadata  `yaml:"metadata"`
	Spec       yaml.Node `yaml:"spec"`
}

// ParseFile splits data (the contents of the file called name) into its
// documents and decodes each envelope strictly. Empty documents are skipped.
// It returns the documents whose envelope is valid and, as an ErrorList,
// every problem found.
func ParseFile(name string, data []byte) ([]*Document, error) {
	var errs ErrorList
	if len(data) > MaxFileSize {
		errs = append(errs, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)})
		return nil, errs.Err()
	}
	var docs []*Document
	err := ReadYAML(name, data, func(n *yaml.Node) {
		d := &Document{File: name, Line: n.Line, lines: map[string]int{}}
		var env envelope
		if derr := d.decode(n, &env, ""); derr != nil {
			errs = append(errs, derr...)
			return
		}
		d.APIVersion, d.Kind, d.Metadata = env.APIVersion, env.Kind, env.Metadata
		if env.Spec.Kind != 0 {
			d.spec = &env.Spec
		}
		if verrs := d.validateEnvelope(); len(verrs) > 0 {
			errs = append(errs, verrs...)
			return
		}
		docs = append(docs, d)
	})
	var syntax *Error
	if errors.As(err, &syntax) {
		errs = append(errs, syntax)
	}
	return docs, errs.Err()
}

func (d *Document) validateEnvelope() ErrorList {
	var errs ErrorList
	switch {
	case d.APIVersion == "":
		errs = append(errs, d.Errorf("apiVersion", "is required (use %s)", APIVersion))
	case d.APIVersion != APIVersion:
		errs = append(errs, d.Errorf("apiVersion", "%q is not supported (use %s)", d.APIVersion, APIVersion))
	}
	if d.Kind == "" {
		errs = append(errs, d.Errorf("kind", "is required"))
	}
	if d.Metadata.Name == "" {
		errs = append(errs, d.Errorf("metadata.name", "is required"))
	} else if err := ValidName(d.Metadata.Name); err != nil {
		errs = append(errs, d.Errorf("metadata.name", "%v", err))
	}
	if d.Metadata.Namespace != "" {
		if err := ValidName(d.Metadata.Namespace); err != nil {
			errs = append(errs, d.Errorf("metadata.namespace", "%v", err))
		}
	}
	return errs
}

// DecodeSpec strictly decodes the document's spec into out (a pointer to a
// struct with yaml tags): unknown and duplicate fields, and values of the
// wrong type, are errors naming the field. A missing spec leaves out as is.
// The returned error is an ErrorList.
func (d *Document) DecodeSpec(out any) error {
	if d.spec == nil {
		return nil
	}
	return d.decode(d.spec, out, "spec").Err()
}

// Errorf returns an error located at field (a path such as
// "spec.rules[0].name"): the line is the field's own when it was decoded,
// else that of its nearest decoded parent, else the document's.
func (d *Document) Errorf(field, format string, args ...any) *Error {
	return &Error{File: d.File, Line: d.LineOf(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// LineOf returns the line of field, or of its nearest decoded parent.
func (d *Document) LineOf(field string) int {
	for f := field; f != ""; f = parentField(f) {
		if l, ok := d.lines[f]; ok {
			return l
		}
	}
	return d.Line
}

func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// Ref is "kind namespace/name" (or "kind name"), for messages.
func (d *Document) Ref() string {
	if d.Metadata.Namespace != "" {
		return d.Kind + " " + d.Metadata.Namespace + "/" + d.Metadata.Name
	}
	return d.Kind + " " + d.Metadata.Name
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName checks a Kubernetes-style name (DNS-1123 label): lower-case
// letters, digits and '-', starting and ending alphanumeric, at most 63
// characters. Services, namespaces and object names use it.
func ValidName(s string) error {
	if len(s) > 63 || !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid name (lower-case letters, digits and '-', at most 63)", s)
	}
	return nil
}

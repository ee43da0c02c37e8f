package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"

	"meshward.dev/meshward/internal/scan"
)

// Kinds the loader gives to documents that are not Kubernetes objects.
const (
	KindConsulAgentConfig = "ConsulAgentConfig"
	KindHelmValues        = "HelmValues"
)

// consulEntryKinds maps Consul config entry kinds to their Kubernetes CRD
// kinds, so rules read one shape.
var consulEntryKinds = map[string]string{
	"service-intentions":  "ServiceIntentions",
	"proxy-defaults":      "ProxyDefaults",
	"service-defaults":    "ServiceDefaults",
	"mesh":                "Mesh",
	"service-router":      "ServiceRouter",
	"service-splitter":    "ServiceSplitter",
	"service-resolver":    "ServiceResolver",
	"ingress-gateway":     "IngressGateway",
	"terminating-gateway": "TerminatingGateway",
	"api-gateway":         "APIGateway",
	"exported-services":   "ExportedServices",
	"jwt-provider":        "JWTProvider",
}

func isConsulEntryKind(v any) bool {
	s, _ := v.(string)
	_, ok := consulEntryKinds[strings.ToLower(s)]
	return ok
}

var consulAgentKeys = []string{
	"datacenter", "acl", "tls", "verify_incoming", "verify_outgoing", "verify_server_hostname",
	"server", "bootstrap_expect", "connect", "data_dir", "encrypt", "retry_join", "node_name",
	"ui_config", "auto_encrypt", "client_addr", "bind_addr", "acl_default_policy", "ca_file", "primary_datacenter",
}

func isConsulAgent(body map[string]any) bool {
	for _, k := range consulAgentKeys {
		if _, ok := body[k]; ok {
			return true
		}
	}
	return false
}

func isHelmValues(body map[string]any) bool {
	_, g := body["global"].(map[string]any)
	return g
}

// decodeHCL reads a Consul agent config or config entry written in HCL.
// hashicorp/hcl v1 is the parser Consul itself uses for these files.
func decodeHCL(name string, data []byte) *FileResult {
	objs, err := decodeHCLObject(name, data)
	res := &FileResult{Objects: objs}
	var me *Error
	switch {
	case errors.As(err, &me):
		res.Problems = []*Error{me}
	case err != nil:
		res.Problems = []*Error{{File: name, Err: err}}
	case len(objs) == 0:
		res.Skipped, res.SkipReason = 1, SkipNotRead
	}
	return res
}

func decodeHCLObject(name string, data []byte) ([]*scan.Object, error) {
	f, err := hcl.ParseBytes(data)
	if err != nil {
		line := 0
		if m := hclLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, &Error{File: name, Line: line, Err: fmt.Errorf("invalid HCL: %v", trimHCLPos(err.Error()))}
	}
	var raw map[string]any
	if err := hcl.DecodeObject(&raw, f); err != nil {
		return nil, &Error{File: name, Err: fmt.Errorf("invalid HCL: %w", err)}
	}
	body, _ := normalizeHCL(raw).(map[string]any)
	if body == nil {
		return nil, nil
	}
	lines := map[string]int{}
	if ol, ok := f.Node.(*ast.ObjectList); ok {
		hclLines(ol, "", lines, 0)
	}
	o, err := fromBody(name, body, lines, 1)
	if err != nil || o == nil {
		return nil, err
	}
	return []*scan.Object{o}, nil
}

func trimHCLPos(s string) string {
	if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(s, "At ") {
		return s[i+2:]
	}
	return s
}

// maxLineDepth matches config.DecodeTree's: HCL field paths deeper than
// this get no line of their own.
const maxLineDepth = 10

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func hclLines(ol *ast.ObjectList, path string, lines map[string]int, depth int) {
	if depth > maxLineDepth {
		return
	}
	for _, it := range ol.Items {
		p := path
		for _, k := range it.Keys {
			p = join(p, strings.Trim(k.Token.Text, `"`))
		}
		if _, seen := lines[p]; !seen {
			lines[p] = it.Pos().Line
		}
		if ot, ok := it.Val.(*ast.ObjectType); ok {
			hclLines(ot.List, p, lines, depth+1)
		}
	}
}

// normalizeHCL turns hcl's decoding ([]map for every block, int for
// numbers) into the loader's shape (a block given once is a mapping, int64).
func normalizeHCL(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normalizeHCL(e)
		}
		return out
	case []map[string]any:
		if len(t) == 1 {
			return normalizeHCL(t[0])
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalizeHCL(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalizeHCL(e)
		}
		return out
	case int:
		return int64(t)
	default:
		return v
	}
}

// consulEntry turns a config entry (`Kind = "service-intentions"`, any key
// casing) into the shape of its Kubernetes CRD: metadata.name from Name and
// spec with camelCase keys; for intentions spec.destination.name.
func consulEntry(file string, body map[string]any, lines map[string]int, line int) (*scan.Object, error) {
	norm := camelKeys(body).(map[string]any)
	kindName, _ := norm["kind"].(string)
	kind, ok := consulEntryKinds[strings.ToLower(kindName)]
	if !ok {
		return nil, &Error{File: file, Line: line, Field: "Kind", Err: fmt.Errorf("%q is not a Consul config entry kind", kindName)}
	}
	name, _ := norm["name"].(string)
	if name == "" {
		switch kind {
		case "ProxyDefaults":
			name = "global"
		case "Mesh":
			name = "mesh"
		default:
			return nil, &Error{File: file, Line: line, Field: "Name", Err: fmt.Errorf("missing")}
		}
	}
	ns, _ := norm["namespace"].(string)
	spec := map[string]any{}
	for k, v := range norm {
		switch k {
		case "kind", "name", "namespace", "partition", "meta":
		default:
			spec[k] = v
		}
	}
	if kind == "ServiceIntentions" {
		spec["destination"] = map[string]any{"name": name}
	}
	specLines := map[string]int{}
	for p, l := range lines {
		segs := strings.Split(p, ".")
		for i := range segs {
			segs[i] = camel(segs[i])
		}
		specLines["spec."+strings.Join(segs, ".")] = l
	}
	return &scan.Object{
		APIVersion: "consul.hashicorp.com/v1alpha1", Kind: kind, Namespace: ns, Name: name,
		File: file, Line: line,
		Body:  map[string]any{"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": kind, "metadata": map[string]any{"name": name}, "spec": spec},
		Lines: specLines,
	}, nil
}

func camelKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[camel(k)] = camelKeys(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = camelKeys(e)
		}
		return out
	}
	return v
}

// camel turns "Sources", "mutual_tls_mode" and "MutualTLSMode" into
// "sources", "mutualTLSMode" and "mutualTLSMode".
func camel(s string) string {
	if s == "" {
		return s
	}
	if strings.ToUpper(s) == s {
		return strings.ToLower(s) // "HTTP" -> "http"
	}
	var b strings.Builder
	up := false
	for i, r := range s {
		switch {
		case r == '_' || r == '-':
			up = true
		case i == 0:
			b.WriteRune(unicode.ToLower(r))
		case up:
			b.WriteRune(unicode.ToUpper(r))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var hclLineRE = regexp.MustCompile(`(?:line |:)(\d+)(?::\d+)?`)

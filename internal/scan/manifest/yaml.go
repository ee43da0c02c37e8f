package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"meshward.dev/meshward/internal/config"
	"meshward.dev/meshward/internal/scan"
)

func decodeYAML(name string, data []byte) *FileResult {
	res := &FileResult{}
	err := config.ReadYAML(name, data, func(root *yaml.Node) {
		if root.Kind == yaml.SequenceNode {
			// A bare JSON array of objects.
			for i, item := range root.Content {
				res.nodeObjects(name, item, fmt.Sprintf("[%d]", i))
			}
			return
		}
		res.nodeObjects(name, root, "")
	})
	var syntax *config.Error
	if errors.As(err, &syntax) {
		if bytes.Contains(data, []byte("{{")) {
			// A Helm or Go template, not rendered: nothing to read
			// until it is (helm template ... | meshward scan -).
			return &FileResult{Skipped: 1, SkipReason: SkipTemplate}
		}
		res.Problems = append(res.Problems, &Error{File: name, Line: syntax.Line, Err: errors.New(syntax.Msg)})
	}
	return res
}

// nodeObjects adds what one document (a mapping) holds: one object, or the
// items of a List, or a skipped document that is nothing the scanner
// reads, or a problem. item names the document inside a List ("items[2]").
func (res *FileResult) nodeObjects(file string, n *yaml.Node, item string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	problem := func(line int, field string, err error) {
		if item != "" {
			field = strings.TrimSuffix(item+"."+field, ".")
		}
		res.Problems = append(res.Problems, &Error{File: file, Line: line, Field: field, Err: err})
	}
	if n.Kind != yaml.MappingNode {
		if !strings.Contains(item, "items[") {
			// A document that is a string or a number (a README named on
			// the command line, a JSON array of values) is no config.
			res.skip(SkipNotRead)
			return
		}
		problem(n.Line, "", fmt.Errorf("is a %s, want a mapping (a Kubernetes object)", nodeKind(n)))
		return
	}
	tree, err := config.DecodeTree(n)
	if err != nil {
		problem(n.Line, "", err)
		return
	}
	body := tree.Value.(map[string]any)
	kind, _ := body["kind"].(string)
	if strings.HasSuffix(kind, "List") && readsAPI(body["apiVersion"]) {
		items := mappingValue(n, "items")
		if items.Kind != yaml.SequenceNode && items.Kind != 0 && items.ShortTag() != "!!null" {
			problem(items.Line, "items", fmt.Errorf("is a %s, want a list of objects", nodeKind(items)))
			return
		}
		for i, it := range items.Content { // items: null or [] hold nothing
			res.nodeObjects(file, it, fmt.Sprintf("%sitems[%d]", strings.TrimSuffix(item, ".")+dotIf(item), i))
		}
		return
	}
	o, err := fromBody(file, body, tree.Lines, n.Line)
	var me *Error
	switch {
	case errors.As(err, &me):
		problem(me.Line, me.Field, me.Err)
	case err != nil:
		problem(n.Line, "", err)
	case o == nil:
		res.skip(SkipNotRead)
	default:
		res.Objects = append(res.Objects, o)
	}
}

func (res *FileResult) skip(reason string) {
	res.Skipped++
	if res.SkipReason == "" {
		res.SkipReason = reason
	}
}

func dotIf(s string) string {
	if s == "" {
		return ""
	}
	return "."
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return &yaml.Node{}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		}
		return "string"
	}
	return "value"
}

// readsAPI reports whether an apiVersion belongs to the API groups the
// scanner reads: Kubernetes' own workload and core groups, the meshes'
// (Istio, Linkerd, Consul, Gateway API) and meshward's. Anything else
// (kustomize, Helm's Chart.yaml "v2", kind, cert-manager, ...) is skipped.
// A document without apiVersion is judged by its kind elsewhere.
func readsAPI(v any) bool {
	api, ok := v.(string)
	if v == nil {
		return true
	}
	if !ok {
		return true // a malformed apiVersion is reported by kubeObject
	}
	group, _, hasGroup := strings.Cut(api, "/")
	if !hasGroup {
		return api == "v1" // the core group
	}
	switch group {
	case "apps", "batch", "extensions", "policy", "networking.k8s.io", "gateway.networking.k8s.io",
		"apps.openshift.io", "admissionregistration.k8s.io", "rbac.authorization.k8s.io":
		return true
	}
	for _, suffix := range []string{"istio.io", "linkerd.io", "consul.hashicorp.com", "meshward.dev"} {
		if group == suffix || strings.HasSuffix(group, "."+suffix) {
			return true
		}
	}
	return false
}

// clusterScoped kinds have no namespace; every other Kubernetes kind
// without one lands in "default", as kubectl apply would put it.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "Node": true,
	"PersistentVolume": true, "StorageClass": true, "PriorityClass": true, "APIService": true,
	"ClusterIssuer": true, "GatewayClass": true, "IngressClass": true, "RuntimeClass": true,
	"PodSecurityPolicy": true, "CSIDriver": true,
}

// fromBody classifies one decoded document and builds its object. It
// returns nil, nil for documents the scanner does not read.
func fromBody(file string, body map[string]any, lines map[string]int, line int) (*scan.Object, error) {
	_, hasAPI := body["apiVersion"]
	kindV, hasKind := body["kind"]
	switch {
	case hasAPI && !readsAPI(body["apiVersion"]):
		return nil, nil // Kustomization, Chart.yaml, kind's Cluster, ...: not for the scanner
	case hasAPI || (hasKind && !isConsulEntryKind(kindV)):
		return kubeObject(file, body, lines, line)
	case hasKind || body["Kind"] != nil:
		return consulEntry(file, body, lines, line)
	case isHelmValues(body): // before agent config: chart values have a server block too
		return &scan.Object{Kind: KindHelmValues, Name: baseName(file), File: file, Line: line, Body: body, Lines: lines}, nil
	case isConsulAgent(body):
		return &scan.Object{Kind: KindConsulAgentConfig, Name: baseName(file), File: file, Line: line, Body: body, Lines: lines}, nil
	}
	return nil, nil
}

func baseName(file string) string {
	if file == Stdin {
		return "stdin"
	}
	return filepath.Base(file)
}

// FromMap builds an object from a decoded Kubernetes document (as a live
// cluster returns it), with no line information.
func FromMap(file string, body map[string]any) (*scan.Object, error) {
	return kubeObject(file, body, nil, 0)
}

func kubeObject(file string, body map[string]any, lines map[string]int, line int) (*scan.Object, error) {
	bad := func(field, format string, args ...any) error {
		l := line
		for p := field; p != ""; {
			if v, ok := lines[p]; ok {
				l = v
				break
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
		return &Error{File: file, Line: l, Field: field, Err: fmt.Errorf(format, args...)}
	}
	api, ok := body["apiVersion"].(string)
	if body["apiVersion"] != nil && !ok {
		return nil, bad("apiVersion", "is a %T, want a string", body["apiVersion"])
	}
	kind, ok := body["kind"].(string)
	if !ok || kind == "" {
		return nil, bad("kind", "missing or not a string")
	}
	var meta map[string]any
	switch t := body["metadata"].(type) {
	case map[string]any:
		meta = t
	case nil:
	default:
		return nil, bad("metadata", "is a %T, want a mapping", t)
	}
	o := &scan.Object{APIVersion: api, Kind: kind, File: file, Line: line, Body: body, Lines: lines}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &o.Name}, {"namespace", &o.Namespace}} {
		switch v := meta[f.key].(type) {
		case string:
			*f.dst = v
		case nil:
		case int64, float64, bool:
			*f.dst = fmt.Sprint(v)
		default:
			return nil, bad("metadata."+f.key, "is a %T, want a string", v)
		}
	}
	if o.Name == "" {
		switch gn, ok := meta["generateName"].(string); {
		case ok:
			o.Name = gn
		case kind == "IstioOperator":
			o.Name = "installed-state" // istioctl's name for an unnamed one
		default:
			return nil, bad("metadata.name", "missing")
		}
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{{"labels", &o.Labels}, {"annotations", &o.Annotations}} {
		switch v := meta[f.key].(type) {
		case map[string]any:
			*f.dst = scan.StringMap(meta, f.key)
		case nil:
		default:
			return nil, bad("metadata."+f.key, "is a %T, want a mapping", v)
		}
	}
	global := clusterScoped[kind] || (strings.HasPrefix(api, "meshward.dev/") && kind != "AccessPolicy")
	switch {
	case global:
		o.Namespace = ""
	case o.Namespace == "":
		o.Namespace = "default"
	}
	if _, ok := body["spec"]; ok {
		if _, isMap := body["spec"].(map[string]any); !isMap && body["spec"] != nil {
			return nil, bad("spec", "is a %T, want a mapping", body["spec"])
		}
	}
	return o, nil
}

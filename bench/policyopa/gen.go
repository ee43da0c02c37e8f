package policyopa

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"meshward.dev/meshward/internal/policy"
)

// Shape of the generated set.
const (
	Policies = 1000
	Rules    = 10
	Target   = "svc-500"
)

// Files is the set as meshward YAML, one file per 100 policies.
func Files() []policy.File {
	var files []policy.File
	var b strings.Builder
	for i := 0; i < Policies; i++ {
		fmt.Fprintf(&b, "---\napiVersion: meshward.dev/v1\nkind: AccessPolicy\nmetadata: {name: svc-%d}\nspec:\n  target: svc-%d\n  rules:\n", i, i)
		for j := 0; j < Rules; j++ {
			fmt.Fprintf(&b, "    - name: rule-%d\n      from: [{service: caller-%d}, {identity: \"spiffe://meshward.local/ns/ops/sa/caller-%d\"}]\n", j, j, j)
			fmt.Fprintf(&b, "      to:\n        - ports: [8080]\n          methods: [GET, POST]\n          paths: [\"/api/v1/resource-%d\", \"/api/v1/resource-%d/*\"]\n          headers: {x-tenant: tenant-%d}\n", j, j, j)
		}
		if (i+1)%100 == 0 || i == Policies-1 {
			files = append(files, policy.File{Name: fmt.Sprintf("gen/policies-%04d.yaml", i), Data: []byte(b.String())})
			b.Reset()
		}
	}
	return files
}

// Data is the same set as OPA data: policies by "namespace/service", each
// a list of rules with their sources and operations.
func Data() map[string]any {
	pols := map[string]any{}
	for i := 0; i < Policies; i++ {
		var rules []any
		for j := 0; j < Rules; j++ {
			rules = append(rules, map[string]any{
				"name": fmt.Sprintf("rule-%d", j),
				"ids": []any{
					fmt.Sprintf("spiffe://meshward.local/ns/default/sa/caller-%d", j),
					fmt.Sprintf("spiffe://meshward.local/ns/ops/sa/caller-%d", j),
				},
				"to": []any{map[string]any{
					"ports":    []any{8080},
					"methods":  []any{"GET", "POST"},
					"exact":    []any{fmt.Sprintf("/api/v1/resource-%d", j)},
					"prefixes": []any{fmt.Sprintf("/api/v1/resource-%d/", j)},
					"headers":  map[string]any{"x-tenant": fmt.Sprintf("tenant-%d", j)},
				}},
			})
		}
		pols[fmt.Sprintf("default/svc-%d", i)] = map[string]any{"name": fmt.Sprintf("svc-%d", i), "rules": rules}
	}
	return map[string]any{"policies": pols}
}

// Rego is the AccessPolicy semantics for this set's features: a rule
// allows when the caller is one of its identities and one operation
// matches port, method, path (exact or prefix) and every header (exactly
// one value, equal).
const Rego = `package meshward.authz

import rego.v1

default decision := {"allow": false, "rule": "default-deny"}

policy := data.policies[sprintf("%s/%s", [input.destination.namespace, input.destination.service])]

matching contains r.name if {
	some r in policy.rules
	input.source in r.ids
	some op in r.to
	input.destination.port in op.ports
	input.request.method in op.methods
	path_ok(op, input.request.path)
	every k, v in op.headers {
		input.request.headers[k] == [v]
	}
}

path_ok(op, p) if p in op.exact

path_ok(op, p) if {
	some pre in op.prefixes
	startswith(p, pre)
}

decision := {"allow": true, "rule": first} if {
	names := [r.name | some r in policy.rules; r.name in matching]
	count(names) > 0
	first := names[0]
}
`

// Case is one benchmark request.
type Case struct {
	Name   string
	Caller int
	Allow  bool
	Rule   string
}

// Cases: the first rule matches, the last (10th) rule matches, none does.
var Cases = []Case{
	{"allow-first", 0, true, "rule-0"},
	{"allow-last", 9, true, "rule-9"},
	{"deny", 42, false, "default-deny"},
}

func source(c Case) string {
	return fmt.Sprintf("spiffe://meshward.local/ns/default/sa/caller-%d", c.Caller)
}

func path(c Case) string { return fmt.Sprintf("/api/v1/resource-%d/items/42", c.Caller) }

func tenant(c Case) string { return fmt.Sprintf("tenant-%d", c.Caller) }

// Request is the case as a meshward request.
func Request(c Case) *policy.Request {
	return &policy.Request{
		Source:      spiffeid.RequireFromString(source(c)),
		Destination: policy.Destination{Service: Target, Namespace: "default", Port: 8080},
		HTTP: &policy.HTTPRequest{Method: "POST", Path: path(c),
			Headers: http.Header{"X-Tenant": {tenant(c)}, "X-Env": {"prod"}, "Accept": {"*/*"}}},
	}
}

// Input is the case as OPA input (header names lower-case, values lists).
func Input(c Case) map[string]any {
	return map[string]any{
		"source":      source(c),
		"destination": map[string]any{"service": Target, "namespace": "default", "port": 8080},
		"request": map[string]any{"method": "POST", "path": path(c),
			"headers": map[string]any{"x-tenant": []any{tenant(c)}, "x-env": []any{"prod"}, "accept": []any{"*/*"}}},
	}
}

package policy

import (
	"fmt"
	"sort"
	"strings"
)

// serviceNames is the set of services policies may name: the mesh file's
// (lint --mesh, up) or the control plane's registry (apply). A target or
// source outside it is an error: `from: [{service: gatway}]` is valid
// syntax that silently breaks traffic.
type serviceNames struct {
	names map[string]bool // "namespace/name"
	from  string          // `mesh "shop"`, "the control plane's registry"
}

func knownServices(opts Options) *serviceNames {
	switch {
	case opts.Mesh != nil:
		n := &serviceNames{names: map[string]bool{}, from: fmt.Sprintf("mesh %q", opts.Mesh.Name)}
		for _, s := range opts.Mesh.Services {
			n.names[s.Namespace+"/"+s.Name] = true
		}
		return n
	case opts.Services != nil:
		n := &serviceNames{names: map[string]bool{}, from: opts.ServicesFrom}
		for _, s := range opts.Services {
			n.names[s] = true
		}
		if n.from == "" {
			n.from = "the known services"
		}
		return n
	}
	return nil
}

func (n *serviceNames) has(namespace, name string) bool { return n.names[namespace+"/"+name] }

// unknown says that namespace/name is not a service, suggesting the
// nearest one when it looks like a typo.
func (n *serviceNames) unknown(namespace, name string) string {
	all := make([]string, 0, len(n.names))
	for k := range n.names {
		all = append(all, k)
	}
	sort.Strings(all)
	msg := fmt.Sprintf("%s/%s is not a service of %s", namespace, name, n.from)
	want := namespace + "/" + name
	best, bestD := "", 3 // suggest within two edits only
	for _, k := range all {
		if d := editDistance(want, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	const show = 20
	if len(all) > show {
		all = append(all[:show:show], fmt.Sprintf("and %d more", len(n.names)-show))
	}
	return msg + "; services: " + strings.Join(all, ", ")
}

// editDistance is the Levenshtein distance of two short names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

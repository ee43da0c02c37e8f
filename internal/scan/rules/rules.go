// Package rules is the scanner's rule catalogue: every rule of every mesh,
// sorted by ID. It holds no rule of its own.
package rules

import (
	"sort"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/rules/cert"
	"meshward.dev/meshward/internal/scan/rules/consul"
	"meshward.dev/meshward/internal/scan/rules/istio"
	"meshward.dev/meshward/internal/scan/rules/linkerd"
	"meshward.dev/meshward/internal/scan/rules/meshward"
)

// All returns every rule, sorted by ID.
func All() []scan.Rule {
	var all []scan.Rule
	all = append(all, istio.Rules()...)
	all = append(all, linkerd.Rules()...)
	all = append(all, consul.Rules()...)
	all = append(all, cert.Rules()...)
	all = append(all, meshward.Rules()...)
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all
}

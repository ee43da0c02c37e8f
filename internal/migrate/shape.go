package migrate

import "fmt"

// Istio's fields hold lists of strings or of mappings. A field of another
// shape (the API server would reject it) must not be read as absent:
// an absent `from` or `paths` means "any", which would widen access.

// badStrings returns the first of keys that m sets to something other than
// a list of strings (or numbers, for ports).
func badStrings(m map[string]any, keys ...string) string {
	for _, k := range keys {
		v, set := m[k]
		if !set || v == nil {
			continue
		}
		l, ok := v.([]any)
		if !ok {
			return k
		}
		for _, e := range l {
			switch e.(type) {
			case string, int64, int, float64:
			default:
				return k
			}
		}
	}
	return ""
}

// badMaps returns the first of keys that m sets to something other than a
// list of mappings.
func badMaps(m map[string]any, keys ...string) string {
	for _, k := range keys {
		v, set := m[k]
		if !set || v == nil {
			continue
		}
		l, ok := v.([]any)
		if !ok {
			return k
		}
		for _, e := range l {
			if _, ok := e.(map[string]any); !ok {
				return k
			}
		}
	}
	return ""
}

var (
	istioSourceFields = []string{"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks",
		"remoteIpBlocks", "notRemoteIpBlocks", "requestPrincipals", "notRequestPrincipals"}
	istioOperationFields = []string{"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"}
)

// istioShape checks rule r of an AuthorizationPolicy; it returns the field
// that has the wrong shape, or "".
func istioShape(rf string, r any) string {
	rm, ok := r.(map[string]any)
	if !ok {
		return rf
	}
	if k := badMaps(rm, "from", "to", "when"); k != "" {
		return rf + "." + k
	}
	for j, f := range asList(rm["from"]) {
		src, ok := f.(map[string]any)["source"].(map[string]any)
		if !ok {
			return fmt.Sprintf("%s.from.%d.source", rf, j)
		}
		if k := badStrings(src, istioSourceFields...); k != "" {
			return fmt.Sprintf("%s.from.%d.source.%s", rf, j, k)
		}
	}
	for j, t := range asList(rm["to"]) {
		op, ok := t.(map[string]any)["operation"].(map[string]any)
		if !ok {
			return fmt.Sprintf("%s.to.%d.operation", rf, j)
		}
		if k := badStrings(op, istioOperationFields...); k != "" {
			return fmt.Sprintf("%s.to.%d.operation.%s", rf, j, k)
		}
	}
	for j, c := range asList(rm["when"]) {
		if k := badStrings(c.(map[string]any), "values", "notValues"); k != "" {
			return fmt.Sprintf("%s.when.%d.%s", rf, j, k)
		}
	}
	return ""
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

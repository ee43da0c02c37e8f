package migrate

import (
	"strconv"
	"strings"
)

// CEL building blocks for `when` conditions. Every string is quoted with
// strconv.Quote, which CEL reads as the same string.

func q(s string) string { return strconv.Quote(s) }

func list(vals []string) string {
	qs := make([]string, len(vals))
	for i, v := range vals {
		qs[i] = q(v)
	}
	return "[" + strings.Join(qs, ", ") + "]"
}

func intList(vals []int) string {
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = strconv.Itoa(v)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// or joins predicates; nil means false.
func or(in []string) string {
	var ps []string
	for _, p := range in {
		switch p {
		case "true":
			return "true"
		case "false":
		default:
			ps = append(ps, p)
		}
	}
	switch len(ps) {
	case 0:
		return "false"
	case 1:
		return ps[0]
	}
	return "(" + strings.Join(ps, " || ") + ")"
}

// and joins predicates; nil means true.
func and(in []string) string {
	var ps []string
	for _, p := range in {
		switch p {
		case "false":
			return "false"
		case "true":
		default:
			ps = append(ps, p)
		}
	}
	switch len(ps) {
	case 0:
		return "true"
	case 1:
		return ps[0]
	}
	return "(" + strings.Join(ps, " && ") + ")"
}

func not(p string) string {
	switch p {
	case "true":
		return "false"
	case "false":
		return "true"
	}
	return "!" + paren(p)
}

func paren(p string) string {
	if strings.HasPrefix(p, "(") && strings.HasSuffix(p, ")") || !strings.ContainsAny(p, " ") {
		return p
	}
	return "(" + p + ")"
}

// istioMatch is Istio's string matching (exact, "prefix*", "*suffix", "*")
// on the CEL expression expr.
func istioMatch(expr string, vals []string) string {
	var exact, ps []string
	for _, v := range vals {
		switch {
		case v == "*":
			return "true"
		case strings.HasSuffix(v, "*"):
			ps = append(ps, expr+".startsWith("+q(strings.TrimSuffix(v, "*"))+")")
		case strings.HasPrefix(v, "*"):
			ps = append(ps, expr+".endsWith("+q(strings.TrimPrefix(v, "*"))+")")
		default:
			exact = append(exact, v)
		}
	}
	if len(exact) == 1 {
		ps = append([]string{expr + " == " + q(exact[0])}, ps...)
	} else if len(exact) > 1 {
		ps = append([]string{expr + " in " + list(exact)}, ps...)
	}
	return or(ps)
}

// header is the CEL value of request header name, guarded so that an
// absent header is false rather than an error.
func headerMatch(name string, vals []string) string {
	n := strings.ToLower(name)
	return and([]string{q(n) + " in request.headers", istioMatch("request.headers["+q(n)+"]", vals)})
}

// l7 makes an HTTP-only predicate of a DENY hold on a connection (where
// the request fields are empty), as Istio applies a DENY's HTTP fields on
// TCP by ignoring them: deny more, never less.
func l7(p string) string { return or([]string{`request.method == ""`, p}) }

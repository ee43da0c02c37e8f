package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Limits on CEL conditions. A condition is compiled once, when the policy
// set is; at run time it may spend at most celCostLimit units (roughly one
// per operation and per element a comprehension visits) before evaluation
// stops, which counts as false.
const (
	celMaxLength = 4096
	celCostLimit = 10000
)

// The typed CEL environment of a `when` condition:
//
//	source.identity, source.trustDomain, source.namespace, source.service  string
//	destination.service, destination.namespace                              string
//	destination.port                                                        int
//	request.method, request.path                                            string
//	request.headers                                map(string, string), lower-case names
//	time                                                                    timestamp
//
// request is empty for an L4 decision (no method, path or headers), so a
// condition that needs them is false there.
type celSource struct {
	Identity    string `cel:"identity"`
	TrustDomain string `cel:"trustDomain"`
	Namespace   string `cel:"namespace"`
	Service     string `cel:"service"`
}

type celDestination struct {
	Service   string `cel:"service"`
	Namespace string `cel:"namespace"`
	Port      int    `cel:"port"`
}

type celRequest struct {
	Method  string            `cel:"method"`
	Path    string            `cel:"path"`
	Headers map[string]string `cel:"headers"`
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeOf(celSource{}), reflect.TypeOf(celDestination{}), reflect.TypeOf(celRequest{}), ext.ParseStructTags(true)),
		cel.Variable("source", cel.ObjectType("policy.celSource")),
		cel.Variable("destination", cel.ObjectType("policy.celDestination")),
		cel.Variable("request", cel.ObjectType("policy.celRequest")),
		cel.Variable("time", cel.TimestampType),
		ext.Strings(),
	)
})

// condition is a compiled `when`.
type condition struct {
	src string
	prg cel.Program
}

func compileCondition(src string) (*condition, error) {
	if len(src) > celMaxLength {
		return nil, fmt.Errorf("longer than %d characters", celMaxLength)
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, errors.New(oneLine(iss.Err().Error()))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must be a bool expression, is %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return &condition{src: src, prg: prg}, nil
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// celActivation resolves the condition's variables from a Request lazily:
// a condition that only reads source does not build the headers map.
type celActivation struct {
	r   *Request
	now time.Time
}

func (a *celActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "source":
		s := &celSource{Identity: a.r.Source.String(), TrustDomain: a.r.Source.TrustDomain().Name()}
		s.Namespace, s.Service = splitWorkloadPath(a.r.Source.Path())
		return s, true
	case "destination":
		d := a.r.Destination
		return &celDestination{Service: d.Service, Namespace: destNamespace(d), Port: d.Port}, true
	case "request":
		req := &celRequest{Headers: map[string]string{}}
		if h := a.r.HTTP; h != nil {
			req.Method, req.Path = h.Method, h.Path
			for k, v := range h.Headers {
				req.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
			}
		}
		return req, true
	case "time":
		return a.now, true
	}
	return nil, false
}

func (a *celActivation) Parent() interpreter.Activation { return nil }

// eval runs the condition; an error (missing key, wrong type, cost limit)
// is false: fail closed.
func (c *condition) eval(r *Request, now time.Time) bool {
	v, _, err := c.prg.Eval(&celActivation{r: r, now: now})
	if err != nil {
		return false
	}
	b, ok := v.Value().(bool)
	return ok && b
}

// splitWorkloadPath returns N and S of a /ns/N/sa/S path, or empty strings.
func splitWorkloadPath(p string) (namespace, service string) {
	rest, ok := strings.CutPrefix(p, "/ns/")
	if !ok {
		return "", ""
	}
	ns, sa, ok := strings.Cut(rest, "/sa/")
	if !ok || ns == "" || sa == "" || strings.Contains(ns, "/") || strings.Contains(sa, "/") {
		return "", ""
	}
	return ns, sa
}

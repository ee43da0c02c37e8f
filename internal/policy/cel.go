package policy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"meshward.dev/meshward/internal/identity"
)

// Limits on CEL conditions. A condition is compiled once, when the policy
// set is; at run time it may spend at most celCostLimit units (roughly one
// per operation and per element a comprehension visits, and for string
// functions one per ten bytes of their input, so a 60 KB header costs what
// it weighs) before evaluation stops, which counts as false. One request
// may spend celRequestBudget across all the conditions it meets: a caller
// allowed by many conditional rules cannot buy a multiple of the limit.
// The limit is checked between calls, so one call may run past it; that
// overshoot is linear in the input (RE2 regexes, header bytes bounded by
// the proxy), which is why a regex pattern must be a literal: compiling a
// caller-supplied pattern costs ~100 ms for a few hundred bytes.
const (
	celMaxLength     = 4096
	celCostLimit     = 10000
	celRequestBudget = 2 * celCostLimit
)

// The typed CEL environment of a `when` condition. The names are declared
// as qualified variables (no reflection at run time; a typo such as
// source.servce is an "undeclared reference" when the policy loads):
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
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("source.identity", cel.StringType),
		cel.Variable("source.trustDomain", cel.StringType),
		cel.Variable("source.namespace", cel.StringType),
		cel.Variable("source.service", cel.StringType),
		cel.Variable("destination.service", cel.StringType),
		cel.Variable("destination.namespace", cel.StringType),
		cel.Variable("destination.port", cel.IntType),
		cel.Variable("request.method", cel.StringType),
		cel.Variable("request.path", cel.StringType),
		cel.Variable("request.headers", cel.MapType(cel.StringType, cel.StringType)),
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
	if err := literalPatterns(ast); err != nil {
		return nil, err
	}
	prg, err := env.Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return &condition{src: src, prg: prg}, nil
}

// literalPatterns refuses a matches() whose pattern is not a string
// literal: a pattern taken from the request would let the caller choose
// the regex (and its compile cost) on every request.
func literalPatterns(a *cel.Ast) error {
	var err error
	celast.PreOrderVisit(celast.NavigateAST(a.NativeRep()), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "matches" || err != nil {
			return
		}
		args := e.AsCall().Args()
		if len(args) == 0 || args[len(args)-1].Kind() != celast.LiteralKind {
			err = errors.New("the pattern of matches() must be a string literal, not taken from the request")
		}
	}))
	return err
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
	r := a.r
	switch name {
	case "source.identity":
		return types.String(r.Source.String()), true
	case "source.trustDomain":
		return types.String(r.Source.TrustDomain().Name()), true
	case "source.namespace":
		ns, _, _ := identity.ParseServiceID(r.Source)
		return types.String(ns), true
	case "source.service":
		_, sa, _ := identity.ParseServiceID(r.Source)
		return types.String(sa), true
	case "destination.service":
		return types.String(r.Destination.Service), true
	case "destination.namespace":
		return types.String(destNamespace(r.Destination)), true
	case "destination.port":
		return types.Int(r.Destination.Port), true
	case "request.method":
		if r.HTTP == nil {
			return types.String(""), true
		}
		return types.String(r.HTTP.Method), true
	case "request.path":
		if r.HTTP == nil {
			return types.String(""), true
		}
		return types.String(r.HTTP.Path), true
	case "request.headers":
		var h http.Header
		if r.HTTP != nil {
			h = r.HTTP.Headers
		}
		return &celHeaders{h: h}, true
	case "time":
		return types.Timestamp{Time: a.now}, true
	}
	return nil, false
}

func (a *celActivation) Parent() interpreter.Activation { return nil }

// eval runs the condition and returns its verdict and the cost it spent;
// an error (missing key, wrong type, cost limit) is false: fail closed.
func (c *condition) eval(r *Request, now time.Time) (bool, uint64) {
	v, det, err := c.prg.Eval(&celActivation{r: r, now: now})
	var cost uint64
	if det != nil && det.ActualCost() != nil {
		cost = *det.ActualCost()
	}
	if err != nil {
		return false, cost
	}
	b, ok := v.Value().(bool)
	return ok && b, cost
}

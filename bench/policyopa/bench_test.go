package policyopa

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"meshward.dev/meshward/internal/policy"
)

func engine(tb testing.TB) *policy.Engine {
	tb.Helper()
	e, err := policy.Compile(Files(), policy.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func prepared(tb testing.TB) rego.PreparedEvalQuery {
	tb.Helper()
	q, err := rego.New(
		rego.Query("data.meshward.authz.decision"),
		rego.Module("authz.rego", Rego),
		rego.Store(inmem.NewFromObject(Data())),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func opaDecide(tb testing.TB, q rego.PreparedEvalQuery, input map[string]any) (bool, string) {
	rs, err := q.Eval(context.Background(), rego.EvalInput(input))
	if err != nil || len(rs) != 1 || len(rs[0].Expressions) != 1 {
		tb.Fatalf("opa eval: %v %v", err, rs)
	}
	d := rs[0].Expressions[0].Value.(map[string]any)
	return d["allow"].(bool), d["rule"].(string)
}

// TestSameDecisions checks that both engines decide every case the same
// way, so the benchmark compares like with like.
func TestSameDecisions(t *testing.T) {
	e, q := engine(t), prepared(t)
	for _, c := range Cases {
		d := e.Decide(Request(c))
		allow, rule := opaDecide(t, q, Input(c))
		if d.Allow != c.Allow || d.Rule != c.Rule || allow != c.Allow || rule != c.Rule {
			t.Errorf("%s: meshward %v/%s, opa %v/%s, want %v/%s", c.Name, d.Allow, d.Rule, allow, rule, c.Allow, c.Rule)
		}
	}
}

func BenchmarkMeshward(b *testing.B) {
	e := engine(b)
	for _, c := range Cases {
		b.Run(c.Name, func(b *testing.B) {
			req := Request(c)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Decide(req)
			}
		})
	}
}

func BenchmarkOPA(b *testing.B) {
	q := prepared(b)
	for _, c := range Cases {
		b.Run(c.Name, func(b *testing.B) {
			in := Input(c)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := q.Eval(context.Background(), rego.EvalInput(in)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

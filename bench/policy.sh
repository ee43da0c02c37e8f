#!/usr/bin/env bash
# Policy decision benchmarks: meshward's compiled engine (1,000 policies x 10
# L7 rules, with and without CEL) and, on the same set and requests, the
# equivalent Rego policy evaluated by OPA (a prepared query, OPA's Go module).
# Prints ns/op for each and the OPA/meshward ratio.
#
#   bench/policy.sh            # default -benchtime 1s, -count 3 (median)
#   BENCHTIME=200000x COUNT=1 bench/policy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

benchtime=${BENCHTIME:-1s}
count=${COUNT:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== meshward policy.Engine.Decide (internal/policy)"
go test ./internal/policy/ -run '^TestDecideNoAlloc$' -bench '^BenchmarkDecide$' -benchmem \
  -benchtime "$benchtime" -count "$count" | tee "$tmp/main.txt" | grep -E '^(Benchmark|ok|FAIL)'

echo "== meshward vs OPA on the same set (bench/policyopa)"
(cd bench/policyopa && go test -run '^TestSameDecisions$' -bench . -benchmem \
  -benchtime "$benchtime" -count "$count") | tee "$tmp/opa.txt" | grep -E '^(Benchmark|ok|FAIL)'

# median ns/op per benchmark name (GOMAXPROCS suffix removed)
median() {
  awk '/^Benchmark/ { n=$1; sub(/-[0-9]+$/, "", n); print n, $3 }' "$1" |
    sort -k1,1 -k2,2n |
    awk '{ v[$1]=v[$1] " " $2; c[$1]++ }
         END { for (k in v) { split(substr(v[k],2), a, " "); print k, a[int((c[k]+1)/2)] } }' | sort
}
median "$tmp/opa.txt" > "$tmp/opa.med"

echo
printf '%-14s %14s %14s %10s\n' case meshward-ns/op opa-ns/op ratio
for c in allow-first allow-last deny; do
  m=$(awk -v k="BenchmarkMeshward/$c" '$1==k {print $2}' "$tmp/opa.med")
  o=$(awk -v k="BenchmarkOPA/$c" '$1==k {print $2}' "$tmp/opa.med")
  awk -v c="$c" -v m="$m" -v o="$o" 'BEGIN { printf "%-14s %14s %14s %9.0fx\n", c, m, o, o / m }'
done

#!/usr/bin/env bash
# bench/dataplane.sh: the same HTTP/1.1 load, on loopback, against
#   direct (no proxy), the shipped meshward sidecar pair, an nginx mTLS
#   pair, an HAProxy mTLS pair and a ghostunnel pair (L4, Go: one TLS
#   connection per client connection).
# Each pair is: client -> A (plaintext, 127.0.0.1) -> mTLS TLS1.3 -> B -> app.
# The meshward rows run what ships: the meshward-proxy binary `meshward up`
# starts, with its defaults (log level info, metrics on), bootstrapped with
# join tokens from a real `meshward control`, under a real policy:
#   meshward      one core per sidecar (the default of --cores), a policy of
#                 one rule allowing the bench path
#   meshward-50r  the same against a target whose policy has 50 rules over
#                 10 callers (the bench caller's rule is the last one)
#   meshward2c    --cores 2
#   helper        the bench-only helper (bench/dataplane sidecar: static
#                 certificates, allow-all, no control plane, no log, no
#                 metrics), kept to show what the wiring costs
# SWITCHES=1 adds one row per telemetry switch turned on against the
# defaults (mw+accesslog, mw+tracing to a local OTLP sink, mw-metrics off).
# Measures: p50/p90/p99 at a fixed 1,000 rps over 16 connections (fortio,
# after one second of the same load as warm-up; LAT_ROUNDS rounds, default
# twice ROUNDS), max rps with keep-alive (16 connections), new client
# connections/s (keep-alive off) and full mTLS handshakes/s against B (one
# request each; ROUNDS rounds, default 3), and peak RSS / CPU seconds of
# each pair's two sidecar processes (never the control plane or the app),
# and their vCPU per 1,000 rps (CPU seconds over each 1,000 rps latency
# run, per second, scaled to 1,000 rps). Every round takes the targets in a
# new random order (SEED); medians are printed, with the p99's spread.
# Bounded: ~12 minutes (~16 with SWITCHES=1).
#
# Needs: go, nginx, haproxy (apt), python3. fortio is built into a temp
# GOBIN from the Go module proxy (v1.66.5; newer ones need a module the
# proxy refuses); so is ghostunnel v1.8.4, whose go-landlock dependency is
# a pseudo-version the checksum database does not know (GONOSUMDB for that
# one module, bench-only); if it cannot be built, its row is skipped.
#
#   bash bench/dataplane.sh            # full run
#   ROUNDS=1 DUR=3s bash bench/dataplane.sh   # quick smoke run (2 latency rounds)
#   SWITCHES=1 bash bench/dataplane.sh        # plus the cost of each switch
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5s}
HS_DUR=${HS_DUR:-3s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/meshward-bench.XXXXXX)
BIN=${BENCH_BIN:-$WORK/bin}
mkdir -p "$BIN" "$WORK/certs" "$WORK/logs"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "missing $1 (apt-get install $2)" >&2; exit 2; }; }
need nginx nginx; need haproxy haproxy; need python3 python3

echo "building helpers into $BIN ..." >&2
(cd "$ROOT" && go build -o "$BIN/dataplane" ./bench/dataplane &&
  go build -o "$BIN/meshward" ./cmd/meshward && go build -o "$BIN/meshward-proxy" ./cmd/meshward-proxy)
if [[ ! -x "$BIN/fortio" ]]; then
  GOBIN="$BIN" GOFLAGS=-mod=mod go install fortio.org/fortio@v1.66.5
fi
FORTIO="$BIN/fortio"
if [[ ! -x "$BIN/ghostunnel" ]]; then
  mkdir -p "$WORK/gt"
  (cd "$WORK/gt" && go mod init ghostunnel-build >/dev/null 2>&1 &&
    GONOSUMDB=github.com/landlock-lsm go get github.com/ghostunnel/ghostunnel@v1.8.4 >/dev/null 2>&1 &&
    GONOSUMDB=github.com/landlock-lsm go build -o "$BIN/ghostunnel" github.com/ghostunnel/ghostunnel) ||
    echo "ghostunnel: could not be built, its row is skipped" >&2
fi
"$BIN/dataplane" gencerts "$WORK/certs"
C=$WORK/certs

APP=127.0.0.1:18080
HP_A=127.0.0.1:18101 HP_B=127.0.0.1:18102
CTL=127.0.0.1:18500
NG_A=127.0.0.1:18201 NG_B=127.0.0.1:18202
HA_A=127.0.0.1:18301 HA_B=127.0.0.1:18302
GT_A=127.0.0.1:18401 GT_B=127.0.0.1:18402

start() { # name cmd... ; records pid in PID_<name>
  local name=$1; shift
  "$@" >"$WORK/logs/$name.log" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
}

start app "$BIN/dataplane" app "$APP"
# The bench-only helper pair, one core each: static certificates, allow-all,
# no control plane, no log, no metrics.
start hpB env GOMAXPROCS=1 "$BIN/dataplane" sidecar -certs "$C" -service catalog -inbound "$HP_B" -app "$APP"
start hpA env GOMAXPROCS=1 "$BIN/dataplane" sidecar -certs "$C" -service frontend -listen "$HP_A" -endpoint "$HP_B"

# What ships: a real control plane, a real policy, join tokens, and the
# meshward-proxy binary with its defaults. Each row is its own pair of
# services (callerN -> targetN), so no caller balances over another row's
# sidecars. The control plane is never counted in a row's CPU or memory.
MW=("$BIN/meshward" --data-dir "$WORK/control")
start control "${MW[@]}" control --listen "$CTL" --dashboard "" --trust-domain bench.local
for i in $(seq 1 100); do
  "${MW[@]}" status >/dev/null 2>&1 && break
  [[ $i == 100 ]] && { echo "the control plane did not come up" >&2; tail -n 20 "$WORK/logs/control.log" >&2; exit 1; }
  sleep 0.1
done
# Rows of the shipped sidecar: name -> "A-listen B-listen extra proxy flags".
declare -A SHIP=([meshward]="127.0.0.1:18111 127.0.0.1:18112"
  [meshward-50r]="127.0.0.1:18121 127.0.0.1:18122"
  [meshward2c]="127.0.0.1:18131 127.0.0.1:18132 --cores 2")
SHIPPED=(meshward meshward-50r meshward2c)
if [[ ${SWITCHES:-0} == 1 ]]; then
  start otlp "$BIN/dataplane" otlpsink 127.0.0.1:18550
  SHIP[mw+accesslog]="127.0.0.1:18141 127.0.0.1:18142 --access-log"
  SHIP[mw+tracing]="127.0.0.1:18151 127.0.0.1:18152 --tracing"
  SHIP[mw-metrics]="127.0.0.1:18161 127.0.0.1:18162 --metrics=false"
  SHIPPED+=(mw+accesslog mw+tracing mw-metrics)
fi
POL=$WORK/policy
mkdir -p "$POL"
cat >"$POL/mesh.yaml" <<YAML
apiVersion: meshward.dev/v1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: bench.local}
YAML
policy_one() { # target caller: one rule, the bench's GET /
  cat <<YAML
---
apiVersion: meshward.dev/v1
kind: AccessPolicy
metadata: {name: $1, namespace: default}
spec:
  target: $1
  rules:
    - name: $2-reads
      from: [{service: $2}]
      to: [{methods: [GET], paths: ["/"]}]
YAML
}
policy_50() { # target caller: 50 rules over 10 callers, the caller's GET / last
  echo "---"
  echo "apiVersion: meshward.dev/v1"
  echo "kind: AccessPolicy"
  echo "metadata: {name: $1, namespace: default}"
  echo "spec:"
  echo "  target: $1"
  echo "  rules:"
  local c r callers=(billing search reviews cart users shipping ledger audit reports "$2")
  for c in "${callers[@]}"; do
    for r in 1 2 3 4 5; do
      case $r in
        1) echo "    - {name: $c-list, from: [{service: $c}], to: [{methods: [GET], paths: [/items, /items/*]}]}" ;;
        2) echo "    - {name: $c-create, from: [{service: $c}], to: [{methods: [POST], paths: [/items]}]}" ;;
        3) echo "    - {name: $c-update, from: [{service: $c}], to: [{methods: [PUT, PATCH], paths: [/items/*]}]}" ;;
        4) echo "    - {name: $c-stock, from: [{service: $c}], to: [{methods: [GET], paths: [/stock/*], headers: {x-tenant: acme}}]}" ;;
        5) echo "    - {name: $c-root, from: [{service: $c}], to: [{methods: [GET, HEAD], paths: [/]}]}" ;;
      esac
    done
  done
}
i=0
for t in "${SHIPPED[@]}"; do
  i=$((i + 1))
  if [[ $t == meshward-50r ]]; then policy_50 "target$i" "caller$i"; else policy_one "target$i" "caller$i"; fi >"$POL/target$i.yaml"
done
"${MW[@]}" policy apply "$POL" --allow-unknown-services -m "bench/dataplane.sh" >/dev/null
# sidecar name service flags...: the shipped binary, bootstrapped with a
# fresh join token, its log where `meshward up` puts it (a file).
sidecar() {
  local name=$1 svc=$2 tok; shift 2
  tok=$("${MW[@]}" token create --service "$svc")
  local env=(MESHWARD_TOKEN="$tok")
  # Spans are exported only where an OTLP endpoint is set (and --tracing,
  # the default, is not turned off): here only on the tracing row.
  [[ " $* " == *" --tracing "* ]] && env+=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:18550)
  start "$name" env "${env[@]}" "$BIN/meshward-proxy" --service "$svc" --control "$CTL" "$@"
}
i=0
declare -A SHIP_A SHIP_B SHIP_PIDS HSID
for t in "${SHIPPED[@]}"; do
  i=$((i + 1))
  read -r a b extra <<<"${SHIP[$t]}"
  # shellcheck disable=SC2086 # extra holds flags
  sidecar "sB$i" "target$i" --inbound "$b" --app "$APP" $extra
  # shellcheck disable=SC2086
  sidecar "sA$i" "caller$i" --upstream "target$i=$a" $extra
  pa=PID_sA$i pb=PID_sB$i
  SHIP_A[$t]=$a SHIP_B[$t]=$b SHIP_PIDS[$t]="${!pa} ${!pb}"
  # The handshake load calls B as its caller, with an SVID of the real CA.
  HSID[$t]=$WORK/id/caller$i; mkdir -p "${HSID[$t]}"
  "$BIN/meshward" identity fetch --token "$("${MW[@]}" token create --service "caller$i")" --control "$CTL" --out "${HSID[$t]}" >/dev/null
done

# nginx and HAProxy run as real pairs: one process per role, like two
# sidecars, each with one worker (thread), the core budget of a meshward
# sidecar.
nginx_conf() { # file workers mtls-upstream servers...
  local f=$1 workers=$2 up=$3; shift 3
  {
    echo "worker_processes $workers;"
    echo "pid $f.pid;"
    echo "error_log $WORK/logs/nginx-error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  upstream app { server $APP; keepalive 64; }"
    echo "  upstream mtls { server $up; keepalive 64; }"
    printf '%s\n' "$@"
    echo "}"
  } >"$f"
}
ngx_a() { # listen
  cat <<NGX
  server {
    listen $1;
    location / {
      proxy_pass https://mtls;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate $C/frontend.pem;
      proxy_ssl_certificate_key $C/frontend-key.pem;
      proxy_ssl_trusted_certificate $C/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name catalog;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
    }
  }
NGX
}
ngx_b() { # listen
  cat <<NGX
  server {
    listen $1 ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $C/catalog.pem;
    ssl_certificate_key $C/catalog-key.pem;
    ssl_client_certificate $C/ca.pem;
    ssl_verify_client on;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
NGX
}
nginx_conf "$WORK/nginx-a.conf" 1 "$NG_B" "$(ngx_a "$NG_A")"
nginx_conf "$WORK/nginx-b.conf" 1 "$NG_B" "$(ngx_b "$NG_B")"
for n in a b; do
  start "nginx$n" nginx -e "$WORK/logs/nginx-error.log" -c "$WORK/nginx-$n.conf" -g 'daemon off;'
done

haproxy_cfg() { # file body
  cat >"$1" <<HAP
global
  nbthread 1
  log stdout format raw local0 err
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
$2
HAP
}
haproxy_cfg "$WORK/haproxy-a.cfg" "frontend fa
  bind $HA_A
  default_backend mtls
backend mtls
  server b $HA_B ssl crt $C/frontend-bundle.pem ca-file $C/ca.pem verify required sni str(catalog) verifyhost catalog"
haproxy_cfg "$WORK/haproxy-b.cfg" "frontend fb
  bind $HA_B ssl crt $C/catalog-bundle.pem ca-file $C/ca.pem verify required
  default_backend app
backend app
  server a $APP"
start haproxya haproxy -db -f "$WORK/haproxy-a.cfg"
start haproxyb haproxy -db -f "$WORK/haproxy-b.cfg"

# ghostunnel: one core each, like the others; both ends check the peer's
# SPIFFE ID, as the sidecars do.
GHOST=0
if [[ -x "$BIN/ghostunnel" ]]; then
  GHOST=1
  start ghostb env GOMAXPROCS=1 "$BIN/ghostunnel" server --listen "$GT_B" --target "$APP" --quiet=all \
    --cert "$C/catalog.pem" --key "$C/catalog-key.pem" --cacert "$C/ca.pem" --allow-uri spiffe://bench.local/ns/default/sa/frontend
  start ghosta env GOMAXPROCS=1 "$BIN/ghostunnel" client --listen "$GT_A" --target "$GT_B" --quiet=all \
    --cert "$C/frontend.pem" --key "$C/frontend-key.pem" --cacert "$C/ca.pem" \
    --override-server-name catalog --verify-uri spiffe://bench.local/ns/default/sa/catalog
fi

# Wait until every path answers.
URLS=("http://$APP/" "http://$HP_A/" "http://$NG_A/" "http://$HA_A/")
for t in "${SHIPPED[@]}"; do URLS+=("http://${SHIP_A[$t]}/"); done
[[ $GHOST == 1 ]] && URLS+=("http://$GT_A/")
for url in "${URLS[@]}"; do
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then break; fi
    [[ $i == 100 ]] && { echo "no answer from $url" >&2; tail -n 20 "$WORK"/logs/*.log >&2; exit 1; }
    sleep 0.1
  done
done

# tree_pids PID: the pid and its descendants (nginx/haproxy workers).
tree_pids() { local p=$1; echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done; }
rss_kb() { local s=0; for p in "$@"; do for q in $(tree_pids "$p"); do s=$((s + $(awk '/VmRSS/{print $2}' /proc/$q/status 2>/dev/null || echo 0))); done; done; echo $s; }
hwm_kb() { local s=0; for p in "$@"; do for q in $(tree_pids "$p"); do s=$((s + $(awk '/VmHWM/{print $2}' /proc/$q/status 2>/dev/null || echo 0))); done; done; echo $s; }
cpu_s() { local t=0; for p in "$@"; do for q in $(tree_pids "$p"); do t=$((t + $(awk '{print $14+$15}' /proc/$q/stat 2>/dev/null || echo 0))); done; done; python3 -c "print($t/$(getconf CLK_TCK))"; }

# The processes of each contender (pids; nginx/HAProxy workers are found
# under them).
declare -A TP=([helper]="$PID_hpA $PID_hpB" [nginx]="$PID_nginxa $PID_nginxb" [haproxy]="$PID_haproxya $PID_haproxyb")
declare -A URL=([direct]="http://$APP/" [helper]="http://$HP_A/" [nginx]="http://$NG_A/" [haproxy]="http://$HA_A/" [ghostunnel]="http://$GT_A/")
declare -A INB=([helper]="$HP_B" [nginx]="$NG_B" [haproxy]="$HA_B" [ghostunnel]="$GT_B")
for t in "${SHIPPED[@]}"; do TP[$t]=${SHIP_PIDS[$t]} URL[$t]="http://${SHIP_A[$t]}/" INB[$t]=${SHIP_B[$t]}; done
PAIRS=("${SHIPPED[@]}" helper nginx haproxy)
if [[ $GHOST == 1 ]]; then
  TP[ghostunnel]="$PID_ghosta $PID_ghostb"
  PAIRS+=(ghostunnel)
fi
declare -A IDLE CPU0
for t in "${PAIRS[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the pid list is intended
  IDLE[$t]=$(rss_kb ${TP[$t]}); CPU0[$t]=$(cpu_s ${TP[$t]})
done
MW_SIDECAR_IDLE=$(rss_kb "$PID_sA1")

fortio_json() { # url out.json extra-args...
  local url=$1 out=$2; shift 2
  "$FORTIO" load -quiet -c 16 -t "$DUR" -json "$out" "$@" "$url" >/dev/null 2>&1 || true
}
LAT=$WORK/latency.tsv LOAD=$WORK/load.tsv
: >"$LAT"; : >"$LOAD"
targets=(direct "${PAIRS[@]}")

# shuffle: ORDER is the targets in a new random order (seeded by SEED, so
# a run can be repeated; no subshell, which would reseed RANDOM). A latency
# run measures the machine its neighbour leaves behind (a max-load run's
# heaps, a new-connection run's sockets), so a fixed or rotated order would
# always pair a target with the same neighbour.
RANDOM=${SEED:-1}
shuffle() {
  local i j x
  ORDER=("${targets[@]}")
  for ((i = ${#ORDER[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1))); x=${ORDER[i]}; ORDER[i]=${ORDER[j]}; ORDER[j]=$x
  done
}
# The p99 of 5,000 requests is decided by a handful of stalled bursts, so
# latency is measured in more rounds than the load (LAT_ROUNDS, default
# twice ROUNDS), each round every target once. The load rounds are spread
# evenly between them and followed by a pause, so that latency is never
# measured right after one particular target's heavy runs.
LAT_ROUNDS=${LAT_ROUNDS:-$((ROUNDS * 2))}
((LAT_ROUNDS >= ROUNDS)) || { echo "LAT_ROUNDS ($LAT_ROUNDS) must be at least ROUNDS ($ROUNDS)" >&2; exit 2; }
pct_row() { # target json cpu0 cpu1: prints "target p50 p90 p99 errors vcpu-per-1k-rps"
  python3 - "$@" <<'PY'
import json, sys
t, f, c0, c1 = sys.argv[1:]
try:
    d = json.load(open(f))
except Exception:
    d = {}
pct = {p["Percentile"]: p["Value"] * 1000 for p in d.get("DurationHistogram", {}).get("Percentiles", [])}
c = d.get("RetCodes", {}) or {}
errs = sum(c.values()) - sum(v for k, v in c.items() if str(k) == "200") if c else 1
# The pair's CPU seconds over the run's seconds is the cores it used at
# the run's rate; scaled to 1,000 requests per second.
secs, qps = d.get("ActualDuration", 0) / 1e9, d.get("ActualQPS", 0)
vcpu = (float(c1) - float(c0)) / secs * 1000 / qps if secs and qps and t != "direct" else "-"
print("\t".join(str(x) for x in [t, pct.get(50, 0), pct.get(90, 0), pct.get(99, 0), errs, vcpu]))
PY
}
load_row() { # target max.json new.json hs: prints "target max new hs errors"
  python3 - "$@" <<'PY'
import json, sys
t, mx, new, hs = sys.argv[1:]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
M, N = load(mx), load(new)
def bad(d):
    c = d.get("RetCodes", {}) or {}
    return sum(c.values()) - sum(v for k, v in c.items() if str(k) == "200") if c else 1
print("\t".join(str(x) for x in [t, M.get("ActualQPS", 0), N.get("ActualQPS", 0), hs, bad(M) + bad(N)]))
PY
}
for r in $(seq 1 "$LAT_ROUNDS"); do
  shuffle
  for t in "${ORDER[@]}"; do
    # One second of the same load first, so that every pair has its
    # upstream keep-alive connections before latency is measured.
    "$FORTIO" load -quiet -c 16 -t 1s -qps 1000 "${URL[$t]}" >/dev/null 2>&1 || true
    c0=0
    # shellcheck disable=SC2086
    [[ $t != direct ]] && c0=$(cpu_s ${TP[$t]})
    fortio_json "${URL[$t]}" "$WORK/lat.json" -qps 1000
    c1=0
    # shellcheck disable=SC2086
    [[ $t != direct ]] && c1=$(cpu_s ${TP[$t]})
    pct_row "$t" "$WORK/lat.json" "$c0" "$c1" >>"$LAT"
    tail -n 1 "$LAT" | tr '\t' ' ' | sed "s|^|  latency round $r/$LAT_ROUNDS: target p50 p90 p99 errors: |" >&2
  done
  # ROUNDS load rounds, spread evenly over the LAT_ROUNDS latency rounds.
  (((r * ROUNDS) % LAT_ROUNDS < ROUNDS)) || continue
  shuffle
  for t in "${ORDER[@]}"; do
    fortio_json "${URL[$t]}" "$WORK/max.json" -qps 0
    fortio_json "${URL[$t]}" "$WORK/new.json" -qps 0 -keepalive=false
    hs="-"
    if [[ $t != direct ]]; then
      hs=$("$BIN/dataplane" handshakes -certs "$C" ${HSID[$t]:+-id "${HSID[$t]}"} -addr "${INB[$t]}" -c 8 -t "$HS_DUR" | awk '{print $1}')
    fi
    load_row "$t" "$WORK/max.json" "$WORK/new.json" "$hs" >>"$LOAD"
    tail -n 1 "$LOAD" | tr '\t' ' ' | sed "s|^|  load after latency round $r: target max-rps new-conn hs errors: |" >&2
  done
  sleep 3 # let the last heavy run's sockets and threads settle
done

declare -A PEAK CPU
for t in "${PAIRS[@]}"; do
  # shellcheck disable=SC2086
  PEAK[$t]=$(hwm_kb ${TP[$t]}); CPU[$t]=$(python3 -c "print($(cpu_s ${TP[$t]})-${CPU0[$t]})")
done
MW_SIDECAR_PEAK=$(hwm_kb "$PID_sA1")
MW_B_PEAK=$(hwm_kb "$PID_sB1")

PAIRSTATS=""
for t in "${PAIRS[@]}"; do PAIRSTATS+="$t=${IDLE[$t]},${PEAK[$t]},${CPU[$t]} "; done
python3 - "$LAT" "$LOAD" "$PAIRSTATS" <<PY
import sys, statistics as st, collections
lat, load = collections.defaultdict(list), collections.defaultdict(list)
for f, rows in ((sys.argv[1], lat), (sys.argv[2], load)):
    for line in open(f):
        c = line.rstrip("\n").split("\t")
        rows[c[0]].append(c[1:])
def med(rows, t, i):
    vals = [float(r[i]) for r in rows[t] if r[i] not in ("-", "")]
    return st.median(vals) if vals else None
pairs = "${PAIRS[*]}".split()
stats = {k: [float(x) for x in v.split(",")] for k, v in (f.split("=") for f in sys.argv[3].split())}
idle = {k: v[0] for k, v in stats.items()}
peak = {k: v[1] for k, v in stats.items()}
cpu = {k: v[2] for k, v in stats.items()}
def r(a, b):
    return f"{a/b:.2f}x" if a is not None and b else "-"
d99, dmax = med(lat, "direct", 2), med(load, "direct", 0)
ncpu = med(lat, "nginx", 4)
n99, nmax, nhs = med(lat, "nginx", 2), med(load, "nginx", 0), med(load, "nginx", 2)
print(f"medians; latency at 1000 rps / 16 conns in ms, ${LAT_ROUNDS} rounds of ${DUR}; load ${ROUNDS} rounds of ${DUR}")
hdr = ["target", "p50", "p90", "p99", "p99 min–max", "+p99 vs direct", "+p99 vs nginx", "max rps", "rps/direct",
       "rps/nginx", "new conn/s", "mTLS hs/s", "hs/nginx", "idle RSS MB (pair)", "peak RSS MB (pair)",
       "vCPU per 1k rps (pair)", "vCPU/nginx", "errors"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for t in ["direct"] + pairs:
    p50, p90, p99 = (med(lat, t, i) for i in range(3))
    p99s = [float(x[2]) for x in lat[t]]
    mx, new, hs = (med(load, t, i) for i in range(3))
    errs = sum(int(float(x[3])) for x in lat[t]) + sum(int(float(x[3])) for x in load[t])
    cells = [t, f"{p50:.3f}", f"{p90:.3f}", f"{p99:.3f}", f"{min(p99s):.2f}–{max(p99s):.2f}",
             f"{p99 - d99:.3f}" if t != "direct" else "-", f"{p99 - n99:+.3f}" if t != "direct" else "-",
             f"{mx:.0f}", r(mx, dmax), r(mx, nmax), f"{new:.0f}", f"{hs:.0f}" if hs else "-",
             r(hs, nhs) if hs else "-", f"{idle[t]/1024:.1f}" if t in idle else "-",
             f"{peak[t]/1024:.1f}" if t in peak else "-", f"{vc:.3f}" if (vc := med(lat, t, 4)) else "-",
             r(vc, ncpu), str(errs)]
    print("| " + " | ".join(cells) + " |")
print()
print(f"meshward per sidecar: outbound (A) idle {${MW_SIDECAR_IDLE}/1024:.1f} MB, peak {${MW_SIDECAR_PEAK}/1024:.1f} MB; inbound (B) peak {${MW_B_PEAK}/1024:.1f} MB")
if "ghostunnel" not in pairs:
    print("ghostunnel: skipped (could not be built here)")
PY

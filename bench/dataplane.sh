#!/usr/bin/env bash
# bench/dataplane.sh: the same HTTP/1.1 load, on loopback, against
#   direct (no proxy), a meshward sidecar pair, an nginx mTLS pair, an
#   HAProxy mTLS pair and a ghostunnel pair (L4, Go: one TLS connection per
#   client connection).
# Each pair is: client -> A (plaintext, 127.0.0.1) -> mTLS TLS1.3 -> B -> app.
# Measures: p50/p90/p99 at a fixed 1,000 rps over 16 connections (fortio,
# after one second of the same load as warm-up; LAT_ROUNDS rounds, default
# twice ROUNDS), max rps with keep-alive (16 connections), new client
# connections/s (keep-alive off) and full mTLS handshakes/s against B (one
# request each; ROUNDS rounds, default 3), and peak RSS / CPU seconds of
# each pair. Every round takes the targets in a new random order (SEED);
# medians are printed, with the p99's spread. Bounded: ~11 minutes.
# "meshward" runs each sidecar on one core (GOMAXPROCS=1, the default of
# `meshward proxy --cores`); "meshward2c" is the same pair with two each.
#
# Needs: go, nginx, haproxy (apt), python3. fortio is built into a temp
# GOBIN from the Go module proxy (v1.66.5; newer ones need a module the
# proxy refuses); so is ghostunnel v1.8.4, whose go-landlock dependency is
# a pseudo-version the checksum database does not know (GONOSUMDB for that
# one module, bench-only); if it cannot be built, its row is skipped.
#
#   bash bench/dataplane.sh            # full run
#   ROUNDS=1 DUR=3s bash bench/dataplane.sh   # quick smoke run (2 latency rounds)
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
(cd "$ROOT" && go build -o "$BIN/dataplane" ./bench/dataplane)
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
MW_A=127.0.0.1:18101 MW_B=127.0.0.1:18102
M1_A=127.0.0.1:18111 M1_B=127.0.0.1:18112
NG_A=127.0.0.1:18201 NG_B=127.0.0.1:18202
NS_A=127.0.0.1:18211 NS_B=127.0.0.1:18212
HA_A=127.0.0.1:18301 HA_B=127.0.0.1:18302
GT_A=127.0.0.1:18401 GT_B=127.0.0.1:18402

start() { # name cmd... ; records pid in PID_<name>
  local name=$1; shift
  "$@" >"$WORK/logs/$name.log" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
}

start app "$BIN/dataplane" app "$APP"
# One core per sidecar (GOMAXPROCS=1): the default of `meshward proxy
# --cores` and of the sidecars `meshward up` starts.
start mwB env GOMAXPROCS=1 "$BIN/dataplane" sidecar -certs "$C" -service catalog -inbound "$MW_B" -app "$APP"
start mwA env GOMAXPROCS=1 "$BIN/dataplane" sidecar -certs "$C" -service frontend -listen "$MW_A" -endpoint "$MW_B"
# The same pair with two cores each (`--cores 2`), for comparison.
start m1B env GOMAXPROCS=2 "$BIN/dataplane" sidecar -certs "$C" -service catalog -inbound "$M1_B" -app "$APP"
start m1A env GOMAXPROCS=2 "$BIN/dataplane" sidecar -certs "$C" -service frontend -listen "$M1_A" -endpoint "$M1_B"

# nginx and HAProxy run as real pairs: one process per role, like two
# sidecars, each with one worker (thread), the core budget of a meshward
# sidecar. "nginx-shared" is the layout of earlier runs, both roles in one
# nginx with two workers: a request can then cross the A -> B hop inside
# one process, which a sidecar pair never can (it is kept for comparison;
# ratios are to the "nginx" pair).
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
nginx_conf "$WORK/nginx-s.conf" 2 "$NS_B" "$(ngx_a "$NS_A")" "$(ngx_b "$NS_B")"
for n in a b s; do
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
URLS=("http://$APP/" "http://$MW_A/" "http://$M1_A/" "http://$NG_A/" "http://$NS_A/" "http://$HA_A/")
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
declare -A TP=([meshward]="$PID_mwA $PID_mwB" [meshward2c]="$PID_m1A $PID_m1B"
  [nginx]="$PID_nginxa $PID_nginxb" [nginx-shared]="$PID_nginxs" [haproxy]="$PID_haproxya $PID_haproxyb")
PAIRS=(meshward meshward2c nginx nginx-shared haproxy)
if [[ $GHOST == 1 ]]; then
  TP[ghostunnel]="$PID_ghosta $PID_ghostb"
  PAIRS+=(ghostunnel)
fi
declare -A IDLE CPU0
for t in "${PAIRS[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the pid list is intended
  IDLE[$t]=$(rss_kb ${TP[$t]}); CPU0[$t]=$(cpu_s ${TP[$t]})
done
MW_SIDECAR_IDLE=$(rss_kb "$PID_mwA")

fortio_json() { # url out.json extra-args...
  local url=$1 out=$2; shift 2
  "$FORTIO" load -quiet -c 16 -t "$DUR" -json "$out" "$@" "$url" >/dev/null 2>&1 || true
}
LAT=$WORK/latency.tsv LOAD=$WORK/load.tsv
: >"$LAT"; : >"$LOAD"
targets=(direct "${PAIRS[@]}")
declare -A URL=([direct]="http://$APP/" [meshward]="http://$MW_A/" [meshward2c]="http://$M1_A/" [nginx]="http://$NG_A/"
  [nginx-shared]="http://$NS_A/" [haproxy]="http://$HA_A/" [ghostunnel]="http://$GT_A/")
declare -A INB=([meshward]="$MW_B" [meshward2c]="$M1_B" [nginx]="$NG_B" [nginx-shared]="$NS_B" [haproxy]="$HA_B" [ghostunnel]="$GT_B")

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
pct_row() { # target json: prints "target p50 p90 p99 errors"
  python3 - "$1" "$2" <<'PY'
import json, sys
t, f = sys.argv[1:]
try:
    d = json.load(open(f))
except Exception:
    d = {}
pct = {p["Percentile"]: p["Value"] * 1000 for p in d.get("DurationHistogram", {}).get("Percentiles", [])}
c = d.get("RetCodes", {}) or {}
errs = sum(c.values()) - sum(v for k, v in c.items() if str(k) == "200") if c else 1
print("\t".join(str(x) for x in [t, pct.get(50, 0), pct.get(90, 0), pct.get(99, 0), errs]))
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
    fortio_json "${URL[$t]}" "$WORK/lat.json" -qps 1000
    pct_row "$t" "$WORK/lat.json" >>"$LAT"
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
      hs=$("$BIN/dataplane" handshakes -certs "$C" -addr "${INB[$t]}" -c 8 -t "$HS_DUR" | awk '{print $1}')
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
MW_SIDECAR_PEAK=$(hwm_kb "$PID_mwA")
MW_B_PEAK=$(hwm_kb "$PID_mwB")

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
n99, nmax, nhs = med(lat, "nginx", 2), med(load, "nginx", 0), med(load, "nginx", 2)
print(f"medians; latency at 1000 rps / 16 conns in ms, ${LAT_ROUNDS} rounds of ${DUR}; load ${ROUNDS} rounds of ${DUR}")
hdr = ["target", "p50", "p90", "p99", "p99 min–max", "+p99 vs direct", "+p99 vs nginx", "max rps", "rps/direct",
       "rps/nginx", "new conn/s", "mTLS hs/s", "hs/nginx", "idle RSS MB (pair)", "peak RSS MB (pair)",
       "CPU s (pair)", "errors"]
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
             f"{peak[t]/1024:.1f}" if t in peak else "-", f"{cpu[t]:.1f}" if t in cpu else "-", str(errs)]
    print("| " + " | ".join(cells) + " |")
print()
print(f"meshward per sidecar: outbound (A) idle {${MW_SIDECAR_IDLE}/1024:.1f} MB, peak {${MW_SIDECAR_PEAK}/1024:.1f} MB; inbound (B) peak {${MW_B_PEAK}/1024:.1f} MB")
if "ghostunnel" not in pairs:
    print("ghostunnel: skipped (could not be built here)")
PY

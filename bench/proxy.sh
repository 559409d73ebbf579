#!/usr/bin/env bash
# Throughput, latency and memory of jhub-proxy next to configurable-http-proxy
# (CHP 5.3.0), on loopback, in front of the same nginx serving a 1 KiB file:
#
#   1. HTTP with a table of 10 routes (/, /ws and /user/bench-0 to -7),
#      requests to /user/bench-5/x: wrk -t1 -c50 --latency against nginx
#      directly, through CHP, through jhub-proxy and, for scale, through a second
#      nginx set up as a reverse proxy (one worker, keep-alive connections
#      to the backend, the same X-Forwarded-* headers) and through
#      bare-proxy (tests/src/bin/bare-proxy.rs: hyper + tokio relaying each
#      client connection to a backend connection of its own, with nothing
#      else, the floor of what a hyper proxy costs), interleaved
#      (direct, CHP, jhub, nginx proxy, bare, direct, ...) so that a busy moment
#      hits all alike; medians of requests/s and of p50/p99 latency, of
#      each proxy's requests/s as a share of the direct rate, and of each
#      proxy's CPU time (user + system, from /proc) per request.
#   2. The same with 10,000 routes /user/bench-N added through the REST API
#      (the time to add them and to GET the whole table is reported too);
#      requests go to /user/bench-5000/x, a path of the same shape as in
#      phase 1, so that only the table's size differs; interleaved with
#      direct and bare-proxy runs again, so that the shares of the direct
#      and bare rates compare the two phases even when the machine's speed
#      drifts between them. The lowest and highest single-round shares are
#      printed next to the medians.
#   3. Websocket round trips/s (and p50/p99) through each, with ws-bench
#      (tests/src/bin/ws-bench.rs): an echo upstream, 10 connections each
#      sending a 32-byte message and waiting for its echo.
#   4. Resident memory (VmRSS) of CHP and jhub-proxy: idle with 10 routes,
#      after phase 1, with 10,000 routes after phase 2, after phase 3.
#
# Usage: bench/proxy.sh   (root or not; needs wrk, nginx, node and CHP from
# tests/setup-reference.sh, and cargo). Environment: ROUNDS (default 3),
# DURATION (wrk -d, default 10s), ROUTES (default 10000), WS_SECONDS
# (default 5), JHUB_PROXY (a jhub-proxy binary to use instead of building
# the release one), PGO=1 (build jhub-proxy with profile-guided
# optimization first, see below). Both proxies run with --log-level warn.
# Takes about ROUNDS x 9 x DURATION plus a few seconds and the builds:
# ~7 minutes, 5 more with PGO=1.
#
# PGO=1 measures a build that install.sh does not make (yet): an
# instrumented jhub-proxy (-Cprofile-generate, target/pgo-generate) is
# trained with 10 s of wrk through it to the same nginx, its profile is
# merged with rustc's own llvm-profdata (rustup component llvm-tools,
# added when missing), and the proxy is rebuilt with it (-Cprofile-use,
# target/pgo-use). The table then names it "jhub-proxy PGO".
# Not part of the test suite.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
ROUTES=${ROUTES:-10000}
WS_SECONDS=${WS_SECONDS:-5}
CHP=${CHP:-/opt/jhub-test/chp/node_modules/.bin/configurable-http-proxy}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

die() { printf 'proxy.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
for tool in wrk nginx python3 cargo curl; do
    command -v "$tool" >/dev/null || die "$tool not found (tests/setup-reference.sh installs wrk and nginx)"
done
[[ -x $CHP ]] || die "CHP not found at $CHP: run 'sudo tests/setup-reference.sh'"

target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PGO=${PGO:-0}
JHUB_LABEL=jhub-proxy
if [[ $PGO == 1 ]]; then
    [[ -z ${JHUB_PROXY:-} ]] || die "PGO=1 builds its own jhub-proxy: unset JHUB_PROXY"
    host=$(rustc -vV | sed -n 's/^host: //p')
    PROFDATA=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
    if [[ ! -x $PROFDATA ]]; then
        say "adding the llvm-tools component (llvm-profdata matching rustc's LLVM)"
        rustup component add llvm-tools >&2 || die "PGO=1 needs 'rustup component add llvm-tools'"
    fi
    [[ -x $PROFDATA ]] || die "no llvm-profdata at $PROFDATA"
    say "building an instrumented jhub-proxy (release, -Cprofile-generate)"
    # Build scripts run instrumented too; their profiles land here, unused.
    mkdir -p "$target_dir/pgo-generate/build-profiles"
    (cd "$ROOT" && CARGO_TARGET_DIR=$target_dir/pgo-generate \
        RUSTFLAGS="-Cprofile-generate=$target_dir/pgo-generate/build-profiles" \
        cargo build --release --quiet -p jhub-proxy --bin jhub-proxy)
    JHUB_LABEL="jhub-proxy PGO"
elif [[ -n ${JHUB_PROXY:-} ]]; then
    JHUB=$JHUB_PROXY
else
    say "building jhub-proxy (release)"
    (cd "$ROOT" && cargo build --release --quiet -p jhub-proxy --bin jhub-proxy)
    JHUB=$target_dir/release/jhub-proxy
fi
say "building ws-bench and bare-proxy (release)"
(cd "$ROOT" && cargo build --release --quiet -p jhub-tests --bin ws-bench --bin bare-proxy)
WS_BENCH=$target_dir/release/ws-bench
BARE_PROXY=$target_dir/release/bare-proxy

tmp=$(mktemp -d)
chmod 0755 "$tmp"   # nginx workers may run as nobody when we are root
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) until URL answers with HTTP 200.
wait_http() {
    local url=$1 token=${2:-}
    for _ in $(seq 1 300); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: token $token" "$url") == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$url did not answer"
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- nginx -----------------------------------------------------------------
mkdir -p "$tmp/www" "$tmp/nginx"
head -c 1024 /dev/zero | tr '\0' x >"$tmp/www/1k.bin"
chmod 0644 "$tmp/www/1k.bin"
chmod 0755 "$tmp/www"
NGINX_PORT=$(free_port)
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $tmp/www;
        # Every path is the 1 KiB file, whatever prefix a route adds.
        location / { default_type application/octet-stream; try_files /1k.bin =404; }
    }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/stderr" &
pids+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/1k.bin"
NGINX=http://127.0.0.1:$NGINX_PORT

# The yardstick: nginx as a reverse proxy in front of the same nginx.
mkdir -p "$tmp/nginx-proxy"
NGINX_PROXY_PORT=$(free_port)
cat >"$tmp/nginx-proxy/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx-proxy/nginx.pid;
error_log $tmp/nginx-proxy/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx-proxy/body;
    proxy_temp_path $tmp/nginx-proxy/proxy;
    fastcgi_temp_path $tmp/nginx-proxy/fastcgi;
    uwsgi_temp_path $tmp/nginx-proxy/uwsgi;
    scgi_temp_path $tmp/nginx-proxy/scgi;
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$NGINX_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PROXY_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
}
EOF
nginx -p "$tmp/nginx-proxy" -c "$tmp/nginx-proxy/nginx.conf" 2>"$tmp/nginx-proxy/stderr" &
pids+=($!)
nginx_proxy_master=$!
wait_http "http://127.0.0.1:$NGINX_PROXY_PORT/1k.bin"
NGINX_PROXY_WORKER=$(pgrep -P "$nginx_proxy_master" | head -n1)
[[ -n $NGINX_PROXY_WORKER ]] || die "nginx (reverse proxy) has no worker process"

# The floor: the least a hyper + tokio proxy does (tests/src/bin/bare-proxy.rs).
"$BARE_PROXY" 0 "127.0.0.1:$NGINX_PORT" >"$tmp/bare-port" 2>"$tmp/bare.log" &
pids+=($!)
BARE_PID=$!
for _ in $(seq 1 100); do [[ -s $tmp/bare-port ]] && break; sleep 0.05; done
BARE_PORT=$(head -n1 "$tmp/bare-port")
[[ -n $BARE_PORT ]] || die "bare-proxy did not start"

# --- websocket echo upstream ------------------------------------------------
mkfifo "$tmp/ws-stdin"
"$WS_BENCH" serve <"$tmp/ws-stdin" >"$tmp/ws-port" &
pids+=($!)
exec 9>"$tmp/ws-stdin"   # held open: ws-bench serves until it closes
for _ in $(seq 1 100); do [[ -s $tmp/ws-port ]] && break; sleep 0.05; done
WS_PORT=$(head -n1 "$tmp/ws-port")
[[ -n $WS_PORT ]] || die "ws-bench serve did not start"

# --- the two proxies --------------------------------------------------------
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -A PROXY_PORT API_PORT PID
start_proxy() {
    local name=$1 binary=$2
    PROXY_PORT[$name]=$(free_port)
    API_PORT[$name]=$(free_port)
    CONFIGPROXY_AUTH_TOKEN=$TOKEN "$binary" --ip 127.0.0.1 --port "${PROXY_PORT[$name]}" \
        --api-ip 127.0.0.1 --api-port "${API_PORT[$name]}" --log-level warn \
        >"$tmp/$name.log" 2>&1 &
    PID[$name]=$!
    pids+=("${PID[$name]}")
    wait_http "http://127.0.0.1:${API_PORT[$name]}/api/routes" "$TOKEN"
}
add_route() {
    local name=$1 path=$2 target=$3
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: token $TOKEN" \
        -d "{\"target\": \"$target\"}" "http://127.0.0.1:${API_PORT[$name]}/api/routes$path")
    [[ $code == 201 ]] || die "$name: POST /api/routes$path answered $code"
}
# --- PGO=1: training, then the optimized build --------------------------------
if [[ $PGO == 1 ]]; then
    mkdir -p "$tmp/pgo"
    LLVM_PROFILE_FILE="$tmp/pgo/jhub-proxy-%p.profraw" \
        start_proxy train "$target_dir/pgo-generate/release/jhub-proxy"
    add_route train / "$NGINX"
    add_route train /user/bench-5 "$NGINX"
    say "training the instrumented jhub-proxy (wrk, 10 s)"
    wrk -t1 -c50 -d10s "http://127.0.0.1:${PROXY_PORT[train]}/user/bench-5/x" >/dev/null
    kill -INT "${PID[train]}"
    wait "${PID[train]}" || true
    compgen -G "$tmp/pgo/*.profraw" >/dev/null || die "the instrumented jhub-proxy wrote no profile"
    "$PROFDATA" merge -o "$tmp/pgo/merged.profdata" "$tmp/pgo"/*.profraw
    say "building jhub-proxy with the profile (release, -Cprofile-use)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$target_dir/pgo-use RUSTFLAGS="-Cprofile-use=$tmp/pgo/merged.profdata" \
        cargo build --release --quiet -p jhub-proxy --bin jhub-proxy)
    JHUB=$target_dir/pgo-use/release/jhub-proxy
fi

say "starting CHP and jhub-proxy"
start_proxy chp "$CHP"
start_proxy jhub "$JHUB"
for name in chp jhub; do
    add_route "$name" / "$NGINX"
    add_route "$name" /ws "http://127.0.0.1:$WS_PORT"
    for i in $(seq 0 7); do add_route "$name" "/user/bench-$i" "$NGINX"; done
done
declare -A RSS_IDLE RSS_LOAD RSS_ROUTES RSS_WS
for name in chp jhub; do RSS_IDLE[$name]=$(rss_mib "${PID[$name]}"); done

# --- wrk --------------------------------------------------------------------
# Prints "requests/s p50_ms p99_ms requests" for one wrk run.
wrk_once() {
    wrk -t1 -c50 -d"$DURATION" --latency "$1" | awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        $2 == "requests" && $3 == "in" { n = $1 }
        $1 == "Non-2xx" { bad = $NF }
        END {
            if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
            printf "%.0f %.3f %.3f %d\n", rps, p50, p99, n
        }'
}
# CPU time (user + system, clock ticks) a process has used, all its threads.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RESULT
# run_phase PHASE PATH TARGETS...: ROUNDS interleaved wrk runs per target.
run_phase() {
    local phase=$1 path=$2
    shift 2
    local round target url pid line t0 t1
    for round in $(seq 1 "$ROUNDS"); do
        for target in "$@"; do
            case $target in
                direct) url=$NGINX$path pid= ;;
                nginx-proxy) url=http://127.0.0.1:$NGINX_PROXY_PORT$path pid=$NGINX_PROXY_WORKER ;;
                bare) url=http://127.0.0.1:$BARE_PORT$path pid=$BARE_PID ;;
                *) url=http://127.0.0.1:${PROXY_PORT[$target]}$path pid=${PID[$target]} ;;
            esac
            say "$phase: round $round/$ROUNDS: $target"
            t0=${pid:+$(cpu_ticks "$pid")}
            line=$(wrk_once "$url") || die "wrk through $target failed"
            t1=${pid:+$(cpu_ticks "$pid")}
            # The proxy's CPU time per request, in microseconds ("-" direct).
            if [[ -n $pid ]]; then
                line+=" $(awk -v t="$((t1 - t0))" -v hz="$TICKS" -v n="${line##* }" \
                    'BEGIN { printf "%.1f", (n > 0 ? t / hz / n * 1e6 : 0) }')"
            else
                line+=" -"
            fi
            echo "$line" >>"$tmp/wrk.$phase.$target"
        done
    done
    for target in "$@"; do
        RESULT[$phase.$target.rps]=$(cut -d' ' -f1 "$tmp/wrk.$phase.$target" | median)
        RESULT[$phase.$target.p50]=$(cut -d' ' -f2 "$tmp/wrk.$phase.$target" | median)
        RESULT[$phase.$target.p99]=$(cut -d' ' -f3 "$tmp/wrk.$phase.$target" | median)
        RESULT[$phase.$target.cpu]=$(awk '$5 != "-" { print $5 }' "$tmp/wrk.$phase.$target" | median)
    done
}

# Warm-up, not counted: node's JIT, connection pools, page cache.
for url in "$NGINX/1k.bin" "http://127.0.0.1:${PROXY_PORT[chp]}/1k.bin" \
    "http://127.0.0.1:${PROXY_PORT[jhub]}/1k.bin" "http://127.0.0.1:$NGINX_PROXY_PORT/1k.bin" \
    "http://127.0.0.1:$BARE_PORT/1k.bin"; do
    say "warm-up: $url"
    wrk -t1 -c50 -d3s "$url" >/dev/null
done
run_phase one /user/bench-5/x direct chp jhub nginx-proxy bare
for name in chp jhub; do RSS_LOAD[$name]=$(rss_mib "${PID[$name]}"); done

# --- 10,000 routes -----------------------------------------------------------
# Adds ROUTES routes /user/bench-N on one keep-alive connection, one POST after
# the other as a hub does; prints the seconds it took.
add_many() {
    python3 - "${API_PORT[$1]}" "$TOKEN" "$ROUTES" "$NGINX" <<'EOF'
import http.client, json, sys, time
port, token, n, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": "token " + token, "Content-Type": "application/json"}
start = time.monotonic()
for i in range(n):
    conn.request("POST", "/api/routes/user/bench-%d" % i, json.dumps({"target": target, "user": "bench-%d" % i}), headers)
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        sys.exit("POST answered %d" % r.status)
print("%.2f" % (time.monotonic() - start))
EOF
}
# Prints the milliseconds one GET /api/routes takes (median of 5).
get_all_ms() {
    python3 - "${API_PORT[$1]}" "$TOKEN" <<'EOF'
import http.client, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
times = []
for _ in range(5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic()
    conn.request("GET", "/api/routes", headers={"Authorization": "token " + token})
    r = conn.getresponse()
    body = r.read()
    times.append((time.monotonic() - start) * 1000)
    if r.status != 200:
        sys.exit("GET answered %d" % r.status)
times.sort()
print("%.1f" % times[2])
EOF
}
declare -A ADD_S GET_MS
for name in chp jhub; do
    say "adding $ROUTES routes to $name"
    ADD_S[$name]=$(add_many "$name")
    GET_MS[$name]=$(get_all_ms "$name")
done
run_phase many "/user/bench-$((ROUTES / 2))/x" direct chp jhub bare
for name in chp jhub; do RSS_ROUTES[$name]=$(rss_mib "${PID[$name]}"); done

# --- websockets --------------------------------------------------------------
declare -A WS
for target in direct chp jhub; do
    case $target in
        direct) url=ws://127.0.0.1:$WS_PORT/ws/bench ;;
        *) url=ws://127.0.0.1:${PROXY_PORT[$target]}/ws/bench ;;
    esac
    say "websocket round trips: $target"
    WS[$target]=$("$WS_BENCH" run "$url" 10 "$WS_SECONDS") || die "ws-bench through $target failed"
done
for name in chp jhub; do RSS_WS[$name]=$(rss_mib "${PID[$name]}"); done

# --- the table ---------------------------------------------------------------
row() { printf '%-44s %14s %14s %14s\n' "$@"; }
echo
echo "loopback, nginx 1 KiB file, wrk -t1 -c50 -d$DURATION, median of $ROUNDS interleaved rounds; $(nproc) CPUs"
row "" direct CHP "$JHUB_LABEL"
row "10 routes: requests/s" "${RESULT[one.direct.rps]}" "${RESULT[one.chp.rps]}" "${RESULT[one.jhub.rps]}"
row "10 routes: p50 latency (ms)" "${RESULT[one.direct.p50]}" "${RESULT[one.chp.p50]}" "${RESULT[one.jhub.p50]}"
row "10 routes: p99 latency (ms)" "${RESULT[one.direct.p99]}" "${RESULT[one.chp.p99]}" "${RESULT[one.jhub.p99]}"
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
# The lowest and highest of a target's per-round shares of the same round's
# direct rate: how far single rounds stray from the median.
share_range() {
    paste -d' ' "$tmp/wrk.$1.$2" "$tmp/wrk.$1.direct" | awk '
        { s = 100 * $1 / $6; if (NR == 1 || s < lo) lo = s; if (NR == 1 || s > hi) hi = s }
        END { printf "%.0f-%.0f%%", lo, hi }'
}
row "10 routes: share of direct requests/s" - "$(share "${RESULT[one.chp.rps]}" "${RESULT[one.direct.rps]}")" \
    "$(share "${RESULT[one.jhub.rps]}" "${RESULT[one.direct.rps]}")"
row "10 routes: share of direct, single rounds" - "$(share_range one chp)" "$(share_range one jhub)"
row "10 routes: proxy CPU per request (us)" - "${RESULT[one.chp.cpu]}" "${RESULT[one.jhub.cpu]}"
row "add $ROUTES routes, one by one (s)" - "${ADD_S[chp]}" "${ADD_S[jhub]}"
row "GET /api/routes with $ROUTES (ms)" - "${GET_MS[chp]}" "${GET_MS[jhub]}"
row "$ROUTES routes: requests/s" "${RESULT[many.direct.rps]}" "${RESULT[many.chp.rps]}" "${RESULT[many.jhub.rps]}"
row "$ROUTES routes: p50 latency (ms)" "${RESULT[many.direct.p50]}" "${RESULT[many.chp.p50]}" "${RESULT[many.jhub.p50]}"
row "$ROUTES routes: p99 latency (ms)" "${RESULT[many.direct.p99]}" "${RESULT[many.chp.p99]}" "${RESULT[many.jhub.p99]}"
row "$ROUTES routes: share of direct requests/s" - "$(share "${RESULT[many.chp.rps]}" "${RESULT[many.direct.rps]}")" \
    "$(share "${RESULT[many.jhub.rps]}" "${RESULT[many.direct.rps]}")"
row "$ROUTES routes: share of direct, single rounds" - "$(share_range many chp)" "$(share_range many jhub)"
row "$ROUTES routes: proxy CPU per request (us)" - "${RESULT[many.chp.cpu]}" "${RESULT[many.jhub.cpu]}"
read -r ws_d_rt ws_d_p50 ws_d_p99 <<<"${WS[direct]}"
read -r ws_c_rt ws_c_p50 ws_c_p99 <<<"${WS[chp]}"
read -r ws_j_rt ws_j_p50 ws_j_p99 <<<"${WS[jhub]}"
row "websocket round trips/s (10 conns)" "$ws_d_rt" "$ws_c_rt" "$ws_j_rt"
row "websocket p50 / p99 (us)" "$ws_d_p50/$ws_d_p99" "$ws_c_p50/$ws_c_p99" "$ws_j_p50/$ws_j_p99"
row "VmRSS idle, 10 routes (MiB)" - "${RSS_IDLE[chp]}" "${RSS_IDLE[jhub]}"
row "VmRSS after HTTP load (MiB)" - "${RSS_LOAD[chp]}" "${RSS_LOAD[jhub]}"
row "VmRSS with $ROUTES routes, after load (MiB)" - "${RSS_ROUTES[chp]}" "${RSS_ROUTES[jhub]}"
row "VmRSS after websockets (MiB)" - "${RSS_WS[chp]}" "${RSS_WS[jhub]}"
echo
echo "for scale, nginx as a reverse proxy (phase 1, same rounds): ${RESULT[one.nginx-proxy.rps]} requests/s" \
    "($(share "${RESULT[one.nginx-proxy.rps]}" "${RESULT[one.direct.rps]}") of direct)," \
    "p50 ${RESULT[one.nginx-proxy.p50]} ms, p99 ${RESULT[one.nginx-proxy.p99]} ms," \
    "CPU ${RESULT[one.nginx-proxy.cpu]} us per request; jhub-proxy does" \
    "$(share "${RESULT[one.jhub.rps]}" "${RESULT[one.nginx-proxy.rps]}") of its requests/s"
for phase in one many; do
    case $phase in one) label="10 routes" ;; *) label="$ROUTES routes" ;; esac
    echo "for scale, bare-proxy, the least a hyper + tokio proxy does (no routes; rounds of the $label phase):" \
        "${RESULT[$phase.bare.rps]} requests/s ($(share "${RESULT[$phase.bare.rps]}" "${RESULT[$phase.direct.rps]}") of direct," \
        "single rounds $(share_range $phase bare)), p50 ${RESULT[$phase.bare.p50]} ms, p99 ${RESULT[$phase.bare.p99]} ms," \
        "CPU ${RESULT[$phase.bare.cpu]} us per request; jhub-proxy does" \
        "$(share "${RESULT[$phase.jhub.rps]}" "${RESULT[$phase.bare.rps]}") of its requests/s"
done

#!/usr/bin/env bash
# The hub's REST API next to JupyterHub 6.1.1's, on loopback, both hubs in
# the same run. Each hub gets its own temporary directory and SQLite file,
# the dummy authenticator, one service whose token holds the admin:users
# scope, and its own configurable-http-proxy, started by this script (the
# hubs are told not to start one, so start-up times are the hubs' own).
# Requests go to each hub's own port, not through the proxy.
#
#   1. GET /hub/api/users with 3 users: wrk -t1 -cCONNECTIONS, requests/s
#      and p99 latency.
#   2. GET /hub/api/users?limit=200 (JupyterHub's largest page) with 1,000
#      users, the same way.
#   3. POST /hub/api/users with {"usernames": [1,000 new names]}: the wall
#      time of that one request (one round: it creates the 1,000 users).
#   4. Start-up, from exec to GET /hub/api/ answering 200: on a new database
#      (one round), with 1,000 users and with MANY (50,000) users. The others
#      are inserted with sqlite3 into each hub's own schema, as copies of a
#      user the API created (the rows of every table that refers to it);
#      the paginated list's total then confirms each hub sees all of them.
#   5. VmRSS: idle after start with 1,000 users, after the load of 2, and
#      idle with 50,000 users.
#
# Rounds are interleaved (JupyterHub, jhub, JupyterHub, ...) so that a busy
# moment hits both alike, and medians are reported. A warm-up wrk run per
# hub precedes each list phase. Both hubs log at LOG_LEVEL (default info,
# one line per request, as deployed).
#
# Usage: bench/hub_api.sh   (root or not; needs wrk and the reference stack
# from tests/setup-reference.sh, python3, curl, and cargo unless JHUB_BIN
# is given). Environment: ROUNDS (default 3), DURATION (wrk -d, default
# 10s), CONNECTIONS (wrk -c, default 10: JupyterHub serves one request at a
# time, so more connections only lengthen its queue), MANY (default 50000),
# START_BUDGET (seconds of start-ups per hub and phase, default 90: fewer
# than ROUNDS rounds when a hub starts slowly), JHUB_BIN (a jhub binary to
# use instead of building the release one), LOG_LEVEL. Takes about
# 4 minutes on a quiet 2-CPU machine (2 minutes of wrk, the rest mostly
# JupyterHub's start-ups and its 1,000-user POST), more on a busy one.
# The table notes the load average before and after: compare runs from a
# quiet machine only. Not part of the test suite.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
MANY=${MANY:-50000}
START_BUDGET=${START_BUDGET:-90}
LOG_LEVEL=${LOG_LEVEL:-info}
VENV=${VENV:-/opt/jhub-test/venv}
CHP=${CHP:-/opt/jhub-test/chp/node_modules/.bin/configurable-http-proxy}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PY=/usr/bin/python3
HUBS=(jupyterhub jhub)

die() { printf 'hub_api.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ $MANY =~ ^[0-9]+$ ]] && ((MANY > 1000)) || die "MANY must be more than 1000"
[[ $START_BUDGET =~ ^[0-9]+$ ]] || die "START_BUDGET must be a number of seconds"
case $LOG_LEVEL in debug | info | warn) ;; *) die "LOG_LEVEL must be debug, info or warn" ;; esac
if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
for tool in wrk curl "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found (tests/setup-reference.sh installs wrk)"
done
[[ -x $VENV/bin/jupyterhub ]] || die "JupyterHub not found in $VENV: run 'sudo tests/setup-reference.sh'"
[[ -x $CHP ]] || die "CHP not found at $CHP: run 'sudo tests/setup-reference.sh'"

if [[ -n ${JHUB_BIN:-} ]]; then
    JHUB=$JHUB_BIN
else
    command -v cargo >/dev/null || die "cargo not found (or give JHUB_BIN)"
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    say "building jhub (release)"
    (cd "$ROOT" && cargo build --release --quiet -p jhub --bin jhub)
    JHUB=$target_dir/release/jhub
fi
[[ -x $JHUB ]] || die "$JHUB is not an executable"

tmp=$(mktemp -d)
declare -A HUB_PID
chp_pids=()
cleanup() {
    local pid
    for pid in "${HUB_PID[@]}" "${chp_pids[@]}"; do
        [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${chp_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- the measuring helpers ---------------------------------------------------
cat >"$tmp/bench.py" <<'EOF'
"""Helpers for bench/hub_api.sh; one subcommand per task."""
import http.client, json, sqlite3, subprocess, sys, time, uuid

def api(port, token, method, path, body=None, accept=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": "token " + token}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if accept:
        headers["Accept"] = accept
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data

def launch(log, cwd, url, timeout, *cmd):
    """Starts cmd (its own session, output to log) and polls url until it
    answers 200; prints the pid and the seconds from exec to that answer."""
    out = open(log, "ab")
    port = int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=out, start_new_session=True)
    deadline = start + float(timeout)
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if p.poll() is not None:
            sys.exit("%s exited (%s) while starting; see %s" % (cmd[0], p.returncode, log))
        if time.monotonic() > deadline:
            p.kill()
            sys.exit("%s did not answer %s in %ss; see %s" % (cmd[0], url, timeout, log))
        time.sleep(0.005)
    print(p.pid, "%.3f" % (time.monotonic() - start))

def post_users(port, token, prefix, n):
    """One POST /hub/api/users creating n users; prints its seconds."""
    names = ["%s%04d" % (prefix, i) for i in range(int(n))]
    start = time.monotonic()
    status, data = api(port, token, "POST", "/hub/api/users", {"usernames": names})
    took = time.monotonic() - start
    if status != 201:
        sys.exit("POST /hub/api/users answered %d: %s" % (status, data[:300]))
    created = json.loads(data)
    if sorted(u["name"] for u in created) != sorted(names):
        sys.exit("POST /hub/api/users created %d users, not the %s asked for" % (len(created), n))
    print("%.3f" % took)

def delete_users(port, token, *names):
    for name in names:
        status, data = api(port, token, "DELETE", "/hub/api/users/" + name)
        if status != 204:
            sys.exit("DELETE /hub/api/users/%s answered %d: %s" % (name, status, data[:300]))

def total(port, token):
    """The users' total from the paginated list."""
    status, data = api(port, token, "GET", "/hub/api/users?limit=1",
                       accept="application/jupyterhub-pagination+json")
    if status != 200:
        sys.exit("GET /hub/api/users answered %d: %s" % (status, data[:300]))
    print(json.loads(data)["_pagination"]["total"])

def items(port, token, path):
    """How many models a (plain list) GET returns."""
    status, data = api(port, token, "GET", path)
    if status != 200:
        sys.exit("GET %s answered %d: %s" % (path, status, data[:300]))
    print(len(json.loads(data)))

def populate(db, template, prefix, target):
    """Adds copies of the user called template (with the rows of every table
    that refers to it) until there are target users."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA foreign_keys = ON")
    have = con.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    need = int(target) - have
    cols = [r[1] for r in con.execute("PRAGMA table_info(users)")]
    pks = [r[1] for r in con.execute("PRAGMA table_info(users)") if r[5]]
    unique = set()
    for idx in con.execute("PRAGMA index_list(users)"):
        if idx[2]:
            unique.update(r[2] for r in con.execute("PRAGMA index_info(%s)" % idx[1]))
    row = con.execute("SELECT * FROM users WHERE name = ?", (template,)).fetchone()
    if row is None:
        sys.exit("no user %s in %s" % (template, db))
    tmpl = dict(zip(cols, row))
    # tables that refer to users, and their rows for the template user
    children = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for fk in con.execute("PRAGMA foreign_key_list(%s)" % table).fetchall():
            if fk[2] == "users" and fk[4] in ("id", None):
                info = con.execute("PRAGMA table_info(%s)" % table).fetchall()
                own_pk = [r[1] for r in info if r[5]]
                keep = [r[1] for r in info if not (own_pk == [r[1]] and r[2].upper() == "INTEGER")]
                rows = con.execute("SELECT %s FROM %s WHERE %s = ?" % (", ".join(keep), table, fk[3]),
                                   (tmpl["id"],)).fetchall()
                children.append((table, keep, fk[3], rows))
    ucols = [c for c in cols if c not in pks]
    con.execute("BEGIN")
    for i in range(need):
        values = []
        for c in ucols:
            if c == "name":
                values.append("%s%05d" % (prefix, i))
            elif c in unique:
                values.append(uuid.uuid4().hex)
            else:
                values.append(tmpl[c])
        cur = con.execute("INSERT INTO users (%s) VALUES (%s)" % (", ".join(ucols), ", ".join("?" * len(ucols))), values)
        uid = cur.lastrowid
        for table, keep, col, rows in children:
            for r in rows:
                vals = [uid if k == col else v for k, v in zip(keep, r)]
                con.execute("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(keep), ", ".join("?" * len(keep))), vals)
    con.execute("COMMIT")
    if con.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    print(need, "users added;", ", ".join("%s: %d" % (t, len(r)) for t, _, _, r in children), "rows each")

globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
EOF
bench() { "$PY" "$tmp/bench.py" "$@"; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# --- the two hubs --------------------------------------------------------------
TOKEN=$(random_hex)
PROXY_TOKEN=$(random_hex)
declare -A PORT API_PORT DIR LAUNCH DB
for hub in "${HUBS[@]}"; do
    DIR[$hub]=$tmp/$hub
    mkdir -m 0700 "${DIR[$hub]}"
    PORT[$hub]=$(free_port)
    public=$(free_port)
    api_port=$(free_port)
    API_PORT[$hub]=$api_port
    CONFIGPROXY_AUTH_TOKEN=$PROXY_TOKEN "$CHP" --ip 127.0.0.1 --port "$public" \
        --api-ip 127.0.0.1 --api-port "$api_port" --default-target "http://127.0.0.1:${PORT[$hub]}" \
        --log-level warn >"${DIR[$hub]}/proxy.log" 2>&1 &
    chp_pids+=($!)
    case $hub in
        jupyterhub)
            DB[$hub]=${DIR[$hub]}/jupyterhub.sqlite
            cat >"${DIR[$hub]}/jupyterhub_config.py" <<EOF
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:$public/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = ${PORT[$hub]}
c.JupyterHub.db_url = "sqlite:///${DB[$hub]}"
c.JupyterHub.cookie_secret_file = "${DIR[$hub]}/cookie_secret"
c.JupyterHub.pid_file = "${DIR[$hub]}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.log_level = "$(tr a-z A-Z <<<"${LOG_LEVEL/warn/warning}")"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:$api_port"
c.ConfigurableHTTPProxy.auth_token = "$PROXY_TOKEN"
c.JupyterHub.services = [{"name": "bench", "api_token": "$TOKEN"}]
c.JupyterHub.load_roles = [{"name": "bench", "scopes": ["admin:users"], "services": ["bench"]}]
EOF
            LAUNCH[$hub]="env -i HOME=${DIR[$hub]} LANG=C.UTF-8 PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin $VENV/bin/jupyterhub -f ${DIR[$hub]}/jupyterhub_config.py"
            ;;
        jhub)
            DB[$hub]=${DIR[$hub]}/jhub.sqlite
            cat >"${DIR[$hub]}/jhub.toml" <<EOF
[hub]
bind_url = "http://127.0.0.1:$public"
hub_bind_url = "http://127.0.0.1:${PORT[$hub]}"
db_url = "sqlite://${DB[$hub]}"
cookie_secret_file = "${DIR[$hub]}/cookie_secret"
authenticator_class = "dummy"

[authenticator]
password = "$(random_hex)"

[proxy]
api_url = "http://127.0.0.1:$api_port"
should_start = false
auth_token = "$PROXY_TOKEN"

[[services]]
name = "bench"
api_token = "$TOKEN"

[[roles]]
name = "bench"
scopes = ["admin:users"]
services = ["bench"]
EOF
            chmod 0600 "${DIR[$hub]}/jhub.toml"
            LAUNCH[$hub]="env -i HOME=${DIR[$hub]} LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin JHUB_LOG=$LOG_LEVEL $JHUB --config ${DIR[$hub]}/jhub.toml"
            ;;
    esac
done
for hub in "${HUBS[@]}"; do
    for _ in $(seq 1 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: token $PROXY_TOKEN" \
            "http://127.0.0.1:${API_PORT[$hub]}/api/routes") == 200 ]] && continue 2
        sleep 0.1
    done
    die "the proxy of $hub did not start: $(cat "${DIR[$hub]}/proxy.log")"
done

# start_hub HUB: starts the hub, waits until its API answers; sets STARTED
# to the seconds that took.
STARTED=
start_hub() {
    local hub=$1 out
    # shellcheck disable=SC2086 # LAUNCH is a word list
    out=$(bench launch "${DIR[$hub]}/$hub.log" "${DIR[$hub]}" "http://127.0.0.1:${PORT[$hub]}/hub/api/" 300 ${LAUNCH[$hub]}) ||
        { tail -n 30 "${DIR[$hub]}/$hub.log" >&2; die "$hub did not start"; }
    read -r HUB_PID[$hub] STARTED <<<"$out"
}
# stop_hub HUB: SIGTERM, then waits for the process to be gone (SIGKILL
# after 60 s).
stop_hub() {
    local hub=$1 pid=${HUB_PID[$1]} state
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
        state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || break
        [[ $state == Z ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    HUB_PID[$hub]=
}
call() { bench "$1" "${PORT[$2]}" "$TOKEN" "${@:3}"; }

# --- wrk ---------------------------------------------------------------------
# Prints "requests/s p99_ms" for one wrk run.
wrk_once() {
    wrk -t1 -c"$CONNECTIONS" -d"$1" --timeout 10s --latency -H "Authorization: token $TOKEN" "$2" | awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "Non-2xx" { bad = $NF }
        $1 == "Socket" { errors = $0 }
        END {
            if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
            if (errors != "") { print errors > "/dev/stderr"; exit 1 }
            printf "%.1f %.2f\n", rps, p99
        }'
}
declare -A RESULT
# list_phase PHASE PATH: a warm-up run per hub, then ROUNDS interleaved runs.
list_phase() {
    local phase=$1 path=$2 round hub
    for hub in "${HUBS[@]}"; do
        say "$phase: warm-up: $hub"
        wrk_once 3s "http://127.0.0.1:${PORT[$hub]}$path" >/dev/null || die "wrk against $hub failed"
    done
    for round in $(seq 1 "$ROUNDS"); do
        for hub in "${HUBS[@]}"; do
            say "$phase: round $round/$ROUNDS: $hub"
            wrk_once "$DURATION" "http://127.0.0.1:${PORT[$hub]}$path" >>"$tmp/wrk.$phase.$hub" ||
                die "wrk against $hub failed (try fewer CONNECTIONS)"
        done
    done
    for hub in "${HUBS[@]}"; do
        RESULT[$phase.rps.$hub]=$(cut -d' ' -f1 "$tmp/wrk.$phase.$hub" | median)
        RESULT[$phase.p99.$hub]=$(cut -d' ' -f2 "$tmp/wrk.$phase.$hub" | median)
    done
}
# start_phase PHASE: restarts each hub, interleaved, ROUNDS times or until
# START_BUDGET seconds of its start-ups are spent; the median start-up.
start_phase() {
    local phase=$1 round hub
    declare -A spent=()
    for round in $(seq 1 "$ROUNDS"); do
        for hub in "${HUBS[@]}"; do
            if ((round > 1 && ${spent[$hub]:-0} >= START_BUDGET)); then continue; fi
            stop_hub "$hub"
            say "$phase: start-up $round/$ROUNDS: $hub"
            start_hub "$hub"
            echo "$STARTED" >>"$tmp/start.$phase.$hub"
            spent[$hub]=$(awk -v a="${spent[$hub]:-0}" -v b="$STARTED" 'BEGIN { printf "%d", a + b + 0.999 }')
        done
    done
    for hub in "${HUBS[@]}"; do
        RESULT[$phase.$hub]=$(median <"$tmp/start.$phase.$hub")
        RESULT[$phase.n.$hub]=$(wc -l <"$tmp/start.$phase.$hub")
    done
}
expect_total() {
    local hub=$1 want=$2 got
    got=$(call total "$hub")
    [[ $got == "$want" ]] || die "$hub lists $got users, not $want"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date +%s)

# --- 0. first start, 3 users ---------------------------------------------------
for hub in "${HUBS[@]}"; do
    say "first start (new database): $hub"
    start_hub "$hub"
    RESULT[fresh.$hub]=$STARTED
    call post-users "$hub" bench-s 3 >/dev/null
    expect_total "$hub" 3
done

# --- 1. GET /users with 3 users -----------------------------------------------
list_phase three /hub/api/users

# --- 3. POST 1,000 users --------------------------------------------------------
for hub in "${HUBS[@]}"; do
    call delete-users "$hub" bench-s0000 bench-s0001 bench-s0002
    say "POST /hub/api/users with 1,000 names: $hub"
    RESULT[post.$hub]=$(call post-users "$hub" bench-u 1000)
    expect_total "$hub" 1000
done

# --- 4. start-up with 1,000 users, 5. RSS idle -----------------------------------
start_phase start1k
sleep 2
declare -A RSS_IDLE RSS_LOAD RSS_MANY
for hub in "${HUBS[@]}"; do
    expect_total "$hub" 1000
    RSS_IDLE[$hub]=$(rss_mib "${HUB_PID[$hub]}")
done

# --- 2. GET /users?limit=200 with 1,000 users, RSS after load ------------------------
for hub in "${HUBS[@]}"; do
    n=$(call items "$hub" "/hub/api/users?limit=200")
    [[ $n == 200 ]] || die "$hub answered $n users for ?limit=200"
done
list_phase page /hub/api/users?limit=200
for hub in "${HUBS[@]}"; do RSS_LOAD[$hub]=$(rss_mib "${HUB_PID[$hub]}"); done

# --- 4. start-up with MANY users ------------------------------------------------------
for hub in "${HUBS[@]}"; do
    stop_hub "$hub"
    say "$hub: inserting $((MANY - 1000)) users into its database"
    bench populate "${DB[$hub]}" bench-u0000 bench-x "$MANY" >&2
done
for hub in "${HUBS[@]}"; do
    start_hub "$hub"
    expect_total "$hub" "$MANY"
done
start_phase startmany
sleep 2
for hub in "${HUBS[@]}"; do
    expect_total "$hub" "$MANY"
    RSS_MANY[$hub]=$(rss_mib "${HUB_PID[$hub]}")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
for hub in "${HUBS[@]}"; do stop_hub "$hub"; done

# --- the table -----------------------------------------------------------------
# ratio HIGHER_IS_BETTER JUPYTERHUB JHUB: how many times better jhub is.
ratio() {
    awk -v up="$1" -v a="$2" -v b="$3" 'BEGIN {
        if (a == "-" || b == "-" || a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
        r = up ? b / a : a / b
        printf (r >= 10 ? "%.0f×" : "%.1f×"), r
    }'
}
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$4" "$2" "$3")"; }
rounds() { [[ ${RESULT[$1.n.jupyterhub]} == "${RESULT[$1.n.jhub]}" ]] && echo "${RESULT[$1.n.jhub]}" || echo "${RESULT[$1.n.jupyterhub]}/${RESULT[$1.n.jhub]}"; }
jupyterhub_version=$("$VENV/bin/jupyterhub" --version 2>/dev/null | tail -n1)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fmt_mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
fmt_s() { awk -v v="$1" 'BEGIN { printf (v < 1 ? "%.3f" : "%.2f"), v }'; }
thousands() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }
raw() { tr '\n' ' ' <"$1" | sed 's/ $//'; }
MANY_TEXT=$(thousands "$MANY")

echo
echo "## jhub and JupyterHub REST API ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "- machine: $(nproc) CPUs ($cpu), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
echo "- load average before / after: $load_before / $load_after; run took $(($(date +%s) - started_at)) s"
if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 4) }'; then
    echo "- **the machine was busy before the run: these numbers are noisy**"
fi
echo "- JupyterHub $jupyterhub_version (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), SQLite $("$VENV/bin/python" -c 'import sqlite3; print(sqlite3.sqlite_version)')), $("$JHUB" --version), $("$CHP" --version 2>/dev/null | sed 's/^/configurable-http-proxy /'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
echo "- wrk -t1 -c$CONNECTIONS -d$DURATION with a service token (admin:users), straight to each hub's port; medians of $ROUNDS interleaved rounds after a warm-up; logs at $LOG_LEVEL"
echo "- start-up: exec to GET /hub/api/ answering 200; rounds (JupyterHub/jhub): 1,000 users $(rounds start1k), $MANY_TEXT users $(rounds startmany)"
echo
echo "| metric | JupyterHub 6.1.1 | jhub | ratio |"
echo "| --- | ---: | ---: | ---: |"
row "GET /hub/api/users, 3 users: requests/s" "${RESULT[three.rps.jupyterhub]}" "${RESULT[three.rps.jhub]}" 1
row "GET /hub/api/users, 3 users: p99 latency (ms)" "${RESULT[three.p99.jupyterhub]}" "${RESULT[three.p99.jhub]}" 0
row "GET /hub/api/users?limit=200, 1,000 users: requests/s" "${RESULT[page.rps.jupyterhub]}" "${RESULT[page.rps.jhub]}" 1
row "GET /hub/api/users?limit=200, 1,000 users: p99 latency (ms)" "${RESULT[page.p99.jupyterhub]}" "${RESULT[page.p99.jhub]}" 0
row "POST /hub/api/users, 1,000 names: one request (s)" "$(fmt_s "${RESULT[post.jupyterhub]}")" "$(fmt_s "${RESULT[post.jhub]}")" 0
row "start-up, new database (s)" "$(fmt_s "${RESULT[fresh.jupyterhub]}")" "$(fmt_s "${RESULT[fresh.jhub]}")" 0
row "start-up, 1,000 users (s)" "$(fmt_s "${RESULT[start1k.jupyterhub]}")" "$(fmt_s "${RESULT[start1k.jhub]}")" 0
row "start-up, $MANY_TEXT users (s)" "$(fmt_s "${RESULT[startmany.jupyterhub]}")" "$(fmt_s "${RESULT[startmany.jhub]}")" 0
row "VmRSS idle after start, 1,000 users (MiB)" "$(fmt_mib "${RSS_IDLE[jupyterhub]}")" "$(fmt_mib "${RSS_IDLE[jhub]}")" 0
row "VmRSS after the 1,000-user list load (MiB)" "$(fmt_mib "${RSS_LOAD[jupyterhub]}")" "$(fmt_mib "${RSS_LOAD[jhub]}")" 0
row "VmRSS idle after start, $MANY_TEXT users (MiB)" "$(fmt_mib "${RSS_MANY[jupyterhub]}")" "$(fmt_mib "${RSS_MANY[jhub]}")" 0
echo
echo "Each round (requests/s, or seconds to start):"
echo
for hub in "${HUBS[@]}"; do
    echo "- $hub: 3 users $(cut -d' ' -f1 "$tmp/wrk.three.$hub" | raw /dev/stdin); 1,000 users $(cut -d' ' -f1 "$tmp/wrk.page.$hub" | raw /dev/stdin); start-up with 1,000 $(raw "$tmp/start.start1k.$hub"), with $MANY_TEXT $(raw "$tmp/start.startmany.$hub")"
done
echo

# The project's targets.
check() {
    local what=$1 ok=$2
    if ((ok)); then echo "- [x] $what"; else echo "- [ ] $what (MISSED)"; fi
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? 1 : 0 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? 1 : 0 }'; }
echo "Targets:"
check "GET /users, 3 users: at least 20× JupyterHub's requests/s" \
    "$(ge "${RESULT[three.rps.jhub]}" "$(awk -v v="${RESULT[three.rps.jupyterhub]}" 'BEGIN { print 20 * v }')")"
check "GET /users?limit=200, 1,000 users: at least 20× JupyterHub's requests/s" \
    "$(ge "${RESULT[page.rps.jhub]}" "$(awk -v v="${RESULT[page.rps.jupyterhub]}" 'BEGIN { print 20 * v }')")"
check "POST 1,000 users under 1 s" "$(lt "${RESULT[post.jhub]}" 1)"
check "start-up with 1,000 users under 0.5 s" "$(lt "${RESULT[start1k.jhub]}" 0.5)"
check "start-up with $MANY_TEXT users under 2 s" "$(lt "${RESULT[startmany.jhub]}" 2)"
check "VmRSS under 30 MiB (idle and after load)" \
    "$(lt "$(printf '%s\n' "${RSS_IDLE[jhub]}" "${RSS_LOAD[jhub]}" "${RSS_MANY[jhub]}" | sort -g | tail -n1)" 30)"

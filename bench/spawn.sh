#!/usr/bin/env bash
# Starting and stopping users' servers: jhub (with our sudospawner helper and
# the jhub-proxy it starts) next to the real JupyterHub 6.1.1 with the Python
# sudospawner (`sudospawner.SudoSpawner` and its mediator from
# /opt/jhub-test/venv) and configurable-http-proxy 5.3.0, both on loopback,
# both as the `jupyterhub` account, both starting the same real server:
# `jupyterhub-singleuser` + JupyterLab from /opt/jhub/venv, as bench users
# this script creates.
#
#   1. One user: spawn to ready, from sending POST /hub/api/users/NAME/server
#      (an admin service token) until the hub says the server is ready: both
#      hubs answer 201 once it is ready if that takes under 10 s, else 202,
#      and then GET /hub/api/users?state=active is polled every 50 ms until
#      the user's server model says `ready` (the table says how many answers
#      were 201). Stop to gone, from sending DELETE until the hub has answered
#      204 (or, after a 202, lists the server as stopped) AND /proc shows no
#      live process of the user's (real or effective uid) left; /proc is
#      scanned every 5 ms. Zombies are not counted: a process that has exited
#      but waits to be reaped by PID 1 (the helper's monitor and the Python
#      mediator's child are orphans when they exit) is gone for this purpose,
#      since how soon PID 1 reaps is the machine's, not the hub's.
#   2. The same for USERS (10) users at once: the requests are sent together
#      from one thread each; "all ready" is the last user's ready minus the
#      first request, "all gone" likewise.
#   3. The server's own start-up and shutdown, without a hub in between:
#      `sudo -nH -u NAME env -i ENV jupyterhub-singleuser`, with the
#      environment jhub gives a server (hub/src/spawner/mod.rs server_env,
#      plus the helper's PATH, HOME, USER, LOGNAME, SHELL), the running jhub
#      as its hub and a token jhub issued for the user; its port is polled
#      every 5 ms from the exec until it answers HTTP at /user/NAME/api (any
#      status: what jhub's own readiness probe asks). Then SIGTERM to the
#      server process, and /proc scanned until no process of the user is left.
#      jhub's own overhead is spawn-to-ready minus this start-up (medians of
#      the per-round differences); the targets are at most +0.3 s for a start
#      and under 0.5 s plus the server's own shutdown for a stop.
#
# Every measurement is repeated ROUNDS times, interleaved (jhub, JupyterHub,
# direct; the next round in another order); medians with min and max are
# printed. A warm-up round (10 users on each hub, one direct run) comes
# first, so that every bench user's home holds what a first start creates.
# At the end, one traced start and stop per hub prints a timeline: the
# progress events (server-sent events, as received), the server process's
# exec (/proc/PID/stat), its first log line and "is running at" line (from
# its log), and the API answers.
#
# JupyterHub's SudoSpawner passes no program to the mediator (only flags):
# the Python mediator runs `jupyterhub-singleuser` from its own directory,
# and /opt/jhub-test/venv has no JupyterLab. So sudospawner_path points at a
# symlink to the unmodified mediator in a root-owned directory of this
# script's that also holds a symlink `jupyterhub-singleuser` to
# /opt/jhub/venv/bin/jupyterhub-singleuser (the mediator takes
# dirname(abspath(argv[0])), which keeps symlinks); a temporary sudoers
# drop-in lets the hub account run it. c.Spawner.cmd is set to the same
# server anyway, and c.Spawner.environment gives it the PATH our helper
# gives, /opt/jhub/venv/bin first.
#
# Usage: sudo bench/spawn.sh   (root; after sudoers/install.sh and
# tests/setup-reference.sh). Environment: ROUNDS (default 5), USERS
# (default 10), WARMUP (default 1), KEEP_LOGS=1 (keep the hubs' logs and
# print where), JHUB_BIN_DIR (a directory holding jhub and jhub-proxy;
# default $CARGO_TARGET_DIR/release or target/release, which must be built:
# `cargo build --release --workspace --bins`). The helper jhub runs is the
# installed /usr/local/bin/sudospawner (the sudoers rule names it); the
# script says when it differs from the built one. Takes 5 to 10 minutes,
# mostly JupyterHub's 10-user rounds. The machine's load average is printed
# with the numbers: compare runs from a quiet machine only. Not part of the
# test suite.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
USERS=${USERS:-10}
WARMUP=${WARMUP:-1}
KEEP_LOGS=${KEEP_LOGS:-0}
REF_VENV=/opt/jhub-test/venv
SERVER=/opt/jhub/venv/bin/jupyterhub-singleuser
CHP=/opt/jhub-test/chp/node_modules/.bin/configurable-http-proxy
HELPER=/usr/local/bin/sudospawner
HELPER_CONFIG=/etc/jhub/sudospawner.toml
HUB_USER=jupyterhub
USERS_GROUP=jupyterhub-users
DROPIN=/etc/sudoers.d/jhub-bench-spawn
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

die() { printf 'spawn.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[[ $EUID -eq 0 ]] || die "run as root (it creates users and a sudoers drop-in)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $USERS =~ ^[1-9][0-9]*$ ]] && ((USERS <= 50)) || die "USERS must be 1 to 50"
BIN_DIR=${JHUB_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
for f in "$BIN_DIR/jhub" "$BIN_DIR/jhub-proxy"; do
    [[ -x $f ]] || die "$f missing: cargo build --release --workspace --bins (or set JHUB_BIN_DIR)"
done
for f in "$HELPER" "$REF_VENV/bin/jupyterhub" "$REF_VENV/bin/sudospawner" "$CHP" "$SERVER" "$PY" /usr/bin/setpriv; do
    [[ -x $f ]] || die "$f missing: run sudoers/install.sh and tests/setup-reference.sh"
done
id "$HUB_USER" >/dev/null 2>&1 || die "no $HUB_USER account: run sudoers/install.sh"
getent group "$USERS_GROUP" >/dev/null || die "no $USERS_GROUP group: run sudoers/install.sh"
grep -qF "\"$SERVER\"" "$HELPER_CONFIG" 2>/dev/null ||
    die "$HELPER_CONFIG does not run $SERVER: both hubs must start the same server"
helper_note="installed helper = the built one"
if [[ -f $BIN_DIR/sudospawner ]] && ! cmp -s "$BIN_DIR/sudospawner" "$HELPER"; then
    helper_note="installed helper DIFFERS from $BIN_DIR/sudospawner (run sudoers/install.sh to measure the built one)"
    say "note: $helper_note"
fi

work=$(mktemp -d /tmp/jhub-bench-spawn.XXXXXX)
chmod 0755 "$work"
declare -A HUB_PID=()
BENCH_USERS=()
failed=1
# Kills, by pid, every process whose real or effective uid is one of the
# bench users' (bounded: 10 passes).
kill_user_processes() {
    local uids=() u pass pids
    for u in "${BENCH_USERS[@]}"; do uids+=("$(id -u "$u" 2>/dev/null)") || true; done
    ((${#uids[@]})) || return 0
    for pass in $(seq 1 10); do
        pids=$("$PY" - "${uids[@]}" <<'EOF'
import os, sys
uids = set(sys.argv[1:])
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open("/proc/%s/status" % p) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if set(line.split()[1:3]) & uids:
                            print(p)
                        break
        except OSError:
            pass
EOF
)
        [[ -z $pids ]] && return 0
        # shellcheck disable=SC2086 # a list of pids
        kill -KILL $pids 2>/dev/null || true
        sleep 0.2
    done
}
cleanup() {
    local hub pid f u
    set +e
    for hub in "${!HUB_PID[@]}"; do kill -TERM "${HUB_PID[$hub]}" 2>/dev/null; done
    for hub in "${!HUB_PID[@]}"; do
        pid=${HUB_PID[$hub]}
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null
    done
    # the proxies: jhub's outlives it by design, CHP outlives a killed JupyterHub
    for f in "$work"/jhub/jhub-proxy.pid "$work"/jupyterhub/proxy.pid; do
        [[ -s $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    kill_user_processes
    for u in "${BENCH_USERS[@]}"; do userdel -r -f "$u" >/dev/null 2>&1; done
    rm -f "$DROPIN"
    if [[ $KEEP_LOGS == 1 || $failed == 1 ]]; then
        rm -rf "$work/bin"
        echo "spawn.sh: logs kept in $work (jhub/jhub.log, jupyterhub/jupyterhub.log, direct-*.log)" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the measuring helpers ---------------------------------------------------
cat >"$work/bench.py" <<'EOF'
"""Helpers for bench/spawn.sh: one subcommand per task; times in seconds."""
import http.client, json, os, re, signal, socket, statistics, subprocess, sys, threading, time
from datetime import datetime

TOKEN = os.environ["BENCH_TOKEN"]
PREFIX_FMT = "/user/%s/"

def api(port, method, path, body=None, timeout=180):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    headers = {"Authorization": "token " + TOKEN}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data

def uid_of(name):
    import pwd
    return pwd.getpwnam(name).pw_uid

def user_processes(uids):
    """{uid: [pid, ...]} of the live processes whose real or effective uid is
    one of uids. Zombies are left out: they have exited, and an orphan's is
    reaped by PID 1, whenever PID 1 gets to it."""
    out = {u: [] for u in uids}
    want = {str(u): u for u in uids}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p, "rb") as f:
                for line in f:
                    if line.startswith(b"State:") and line.split()[1] == b"Z":
                        break
                    if line.startswith(b"Uid:"):
                        f2 = line.split()
                        for v in (f2[1], f2[2]):
                            u = want.get(v.decode())
                            if u is not None:
                                out[u].append(int(p))
                                break
                        break
        except OSError:
            pass
    return out

def wait_hub(port, timeout):
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            if api(port, "GET", "/hub/api/", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the hub on port %s did not answer in %ss" % (port, timeout))

def add_users(port, *names):
    status, data = api(port, "POST", "/hub/api/users", {"usernames": list(names)})
    if status != 201:
        sys.exit("POST /hub/api/users answered %d: %s" % (status, data[:300]))

def active_models(port):
    """{name: server model} of the users with an active default server."""
    status, data = api(port, "GET", "/hub/api/users?state=active&limit=200", timeout=30)
    if status != 200:
        raise RuntimeError("GET /hub/api/users?state=active answered %d: %s" % (status, data[:300]))
    return {u["name"]: (u.get("servers") or {}).get("") for u in json.loads(data)}

POLL = 0.05     # the model poll, after a 202
PROC_POLL = 0.005
LIMIT = 300.0   # any one wait

def spawn(port, *names):
    """Starts the default servers of names at once; prints JSON: seconds
    to each ready, and how each was seen (201 or polled)."""
    n = len(names)
    barrier = threading.Barrier(n + 1)
    sent, answered, status, errors = {}, {}, {}, []
    def one(name):
        barrier.wait()
        sent[name] = time.monotonic()
        try:
            st, data = api(port, "POST", "/hub/api/users/%s/server" % name, {}, timeout=LIMIT)
        except Exception as e:
            errors.append("%s: %s" % (name, e)); return
        answered[name] = time.monotonic()
        status[name] = st
        if st not in (201, 202):
            errors.append("POST %s/server answered %d: %s" % (name, st, data[:300]))
    threads = [threading.Thread(target=one, args=(u,)) for u in names]
    for t in threads: t.start()
    barrier.wait()
    for t in threads: t.join(LIMIT + 10)
    if errors:
        # a failed request fails the round: the servers that did start are
        # stopped by the caller, and the round is left out of the medians
        print(json.dumps({"errors": errors}))
        return
    ready = {u: answered[u] for u in names if status[u] == 201}
    pending = [u for u in names if status[u] == 202]
    deadline = time.monotonic() + LIMIT
    while pending:
        models = active_models(port)
        now = time.monotonic()
        for u in list(pending):
            m = models.get(u)
            if m and m.get("ready"):
                ready[u] = now; pending.remove(u)
        if now > deadline:
            sys.exit("not ready after %ss: %s" % (LIMIT, pending))
        if pending:
            time.sleep(POLL)
    t0 = min(sent.values())
    print(json.dumps({
        "all": max(ready.values()) - t0,
        "each": [ready[u] - sent[u] for u in names],
        "polled": sum(1 for u in names if status[u] == 202),
    }))

def stop(port, *names):
    """Stops the default servers of names at once; prints JSON: seconds to
    the API's answer (or the server listed as stopped) and to no process of
    the user's left, the latest over the users."""
    uids = {u: uid_of(u) for u in names}
    idle = [u for u, p in user_processes(uids.values()).items() if not p]
    idle_names = {n for n in names if uids[n] in idle}
    n = len(names)
    barrier = threading.Barrier(n + 1)
    sent, done, status, errors = {}, {}, {}, []
    def one(name):
        barrier.wait()
        sent[name] = time.monotonic()
        try:
            st, data = api(port, "DELETE", "/hub/api/users/%s/server" % name, timeout=LIMIT)
        except Exception as e:
            errors.append("%s: %s" % (name, e)); return
        status[name] = st
        if st == 204 or (st == 400 and name in idle_names):
            done[name] = time.monotonic()
        elif st != 202:
            errors.append("DELETE %s/server answered %d: %s" % (name, st, data[:300]))
    threads = [threading.Thread(target=one, args=(u,)) for u in names]
    for t in threads: t.start()
    barrier.wait()
    t0 = time.monotonic()
    gone = {}
    deadline = t0 + LIMIT
    last_model_poll = 0.0
    while True:
        now = time.monotonic()
        procs = user_processes(uids.values())
        for u in names:
            if procs[uids[u]]:
                gone.pop(u, None)
            elif u not in gone:
                gone[u] = now
        if errors:
            sys.exit("; ".join(errors))
        api_done = all(not t.is_alive() for t in threads)
        if api_done:
            waiting = [u for u in names if u not in done]
            if waiting and now - last_model_poll >= POLL:
                last_model_poll = now
                models = active_models(port)
                for u in waiting:
                    if models.get(u) is None:
                        done[u] = time.monotonic()
            if len(done) == n and len(gone) == n:
                break
        if now > deadline:
            left = {u: procs[uids[u]] for u in names if procs[uids[u]]}
            sys.exit("not stopped after %ss: answered %s, processes left %s" % (LIMIT, sorted(done), left))
        time.sleep(PROC_POLL)
    first = min(sent.values())
    # whether the hub agrees the servers stopped
    stale = sorted(u for u in active_models(port) if u in uids)
    print(json.dumps({
        "api": max(done[u] for u in names) - first,
        "gone": max(max(done[u], gone[u]) for u in names) - first,
        "polled": sum(1 for u in names if status.get(u) == 202),
        "stale": stale,
    }))

def parent(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None

def describe(pids):
    out = []
    for q in pids:
        try:
            with open("/proc/%d/cmdline" % q, "rb") as f:
                out.append("%d (%s)" % (q, f.read().replace(b"\0", b" ").decode(errors="replace")[:100].strip()))
        except OSError:
            out.append("%d (gone)" % q)
    return ", ".join(out)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def answers_http(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        c.getresponse().read()
        c.close()
        return True
    except OSError:
        return False

def direct(hub_port, public, server, name, log):
    """Runs the server as name without a hub in between; prints JSON: its
    start-up (exec to the first HTTP answer) and shutdown (SIGTERM to no
    process of name's left)."""
    import pwd
    pw = pwd.getpwnam(name)
    uid = pw.pw_uid
    if user_processes([uid])[uid]:
        sys.exit("%s has processes before the direct run" % name)
    st, data = api(hub_port, "POST", "/hub/api/users/%s/tokens" % name,
                   {"note": "bench: direct server run", "expires_in": 3600,
                    "scopes": ["users:activity!user=%s" % name, "access:servers!server=%s/" % name]})
    if st != 201:
        sys.exit("POST /users/%s/tokens answered %d: %s" % (name, st, data[:300]))
    token = json.loads(data)["token"]
    port = free_port()
    prefix = PREFIX_FMT % name
    hub_api = "http://127.0.0.1:%s/hub/api" % hub_port
    scopes = json.dumps(["access:servers!server=%s/" % name, "access:servers!user=%s" % name])
    env = {
        "JUPYTERHUB_API_TOKEN": token, "JPY_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-%s" % name,
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0", "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": prefix + "oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": scopes, "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_USER": name, "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_ACTIVITY_URL": "%s/users/%s/activity" % (hub_api, name),
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:%d%s" % (port, prefix),
        "JUPYTERHUB_PUBLIC_URL": public + prefix,
        "JUPYTERHUB_PUBLIC_HUB_URL": public + "/hub/",
        "JUPYTERHUB_DEFAULT_URL": "/lab", "LANG": "C.UTF-8",
        # what the helper sets
        "PATH": os.path.dirname(server) + ":/usr/local/bin:/usr/bin:/bin",
        "HOME": pw.pw_dir, "USER": name, "LOGNAME": name, "SHELL": pw.pw_shell,
    }
    cmd = ["sudo", "-nH", "-u", name, "env", "-i"] + ["%s=%s" % kv for kv in env.items()] + [server]
    out = open(log, "ab")
    probe = prefix + "api"
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=pw.pw_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    deadline = start + LIMIT
    while not answers_http(port, probe):
        if p.poll() is not None:
            sys.exit("the server exited (%s) while starting; see %s" % (p.returncode, log))
        if time.monotonic() > deadline:
            p.kill(); sys.exit("the server did not answer in %ss; see %s" % (LIMIT, log))
        time.sleep(PROC_POLL)
    started = time.monotonic() - start
    # the server is sudo's child; anything else is the server's
    pids = user_processes([uid])[uid]
    server_pid = [q for q in pids if parent(q) == p.pid]
    if len(server_pid) != 1:
        sys.exit("no server process among %s's %s (sudo is %d)" % (name, describe(pids), p.pid))
    others = [q for q in pids if q != server_pid[0]]
    if others:
        print("direct run: besides the server, %s runs %s" % (name, describe(others)), file=sys.stderr)
    begin = time.monotonic()
    os.kill(server_pid[0], signal.SIGTERM)
    while user_processes([uid])[uid]:
        if time.monotonic() > begin + LIMIT:
            sys.exit("the server did not exit within %ss of SIGTERM" % LIMIT)
        time.sleep(PROC_POLL)
    stopped = time.monotonic() - begin
    p.wait(30)
    api(hub_port, "DELETE", "/hub/api/users/%s/tokens/%s" % (name, json.loads(data)["id"]))
    print(json.dumps({"start": started, "stop": stopped}))

# --- the traced start and stop -------------------------------------------------
LOG_LINE = re.compile(r"^\[([A-Z]) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\S+)\s*\]")

def wall(stamp):
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()

def proc_start_boot(pid):
    """When pid was forked, on CLOCK_BOOTTIME (in 10 ms ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")

def server_lines(path, since):
    """(wall time, text) of the jupyter log lines in path at or after since."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_LINE.match(line)
                # the hub's own lines, in JupyterHub's log, are not the server's
                if m and m.group(3) not in ("JupyterHub", "ConfigProxy"):
                    t = wall(m.group(2))
                    if t >= since - 0.001:
                        out.append((t, line.rstrip()))
    except OSError:
        pass
    return out

def trace(port, name, server_log):
    """One start and stop of name's server, with a timeline."""
    uid = uid_of(name)
    events = []
    t_wall0 = time.time(); t0 = time.monotonic(); t_boot0 = time.clock_gettime(time.CLOCK_BOOTTIME)
    rel = lambda: time.monotonic() - t0
    def follow():
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=LIMIT)
            conn.request("GET", "/hub/api/users/%s/server/progress" % name,
                         headers={"Authorization": "token " + TOKEN, "Accept": "text/event-stream"})
            r = conn.getresponse()
            if r.status != 200:
                r.read(); conn.close(); time.sleep(0.005); continue
            buf = b""
            while True:
                line = r.fp.readline()
                if not line:
                    return
                if line.startswith(b"data:"):
                    e = json.loads(line[5:])
                    events.append((rel(), "progress %s: %s" % (e.get("progress"), e.get("message"))))
                    if e.get("ready") or e.get("failed"):
                        return
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    st, data = api(port, "POST", "/hub/api/users/%s/server" % name, {})
    events.append((rel(), "POST answered %d" % st))
    if st == 202:
        while not (active_models(port).get(name) or {}).get("ready"):
            time.sleep(0.02)
        events.append((rel(), "model says ready (polled)"))
    follower.join(5)
    procs = user_processes([uid])[uid]
    for pid in procs:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        what = " ".join(os.path.basename(c.decode()) for c in cmd[:2] if c)
        events.append((proc_start_boot(pid) - t_boot0, "process %d started (fork/exec, 10 ms ticks): %s" % (pid, what)))
    lines = server_lines(server_log, t_wall0)
    if lines:
        events.append((lines[0][0] - t_wall0, "server's first log line: " + lines[0][1][:110]))
        for t, text in lines:
            if "is running at" in text:
                events.append((t - t_wall0, "server log: " + text[:110]))
                break
    events.sort()
    print("  start of %s's server:" % name)
    print("    %8s  %s" % ("0.000", "POST /hub/api/users/NAME/server sent"))
    for t, what in events:
        print("    %8.3f  %s" % (t, what))
    # the stop
    server_pids = list(procs)
    t0 = time.monotonic()
    out = {}
    def delete():
        out["status"] = api(port, "DELETE", "/hub/api/users/%s/server" % name)[0]
        out["t"] = rel()
    d = threading.Thread(target=delete); d.start()
    seen_gone, seen, names = {}, set(server_pids), {}
    while True:
        left = set(user_processes([uid])[uid])
        for pid in left - seen:
            seen.add(pid)
            names[pid] = describe([pid])
        for pid in seen:
            if pid not in left and pid not in seen_gone:
                seen_gone[pid] = rel()
        if not left and not d.is_alive():
            break
        if rel() > LIMIT:
            sys.exit("the traced stop did not end")
        time.sleep(PROC_POLL)
    all_gone = max(seen_gone.values()) if seen_gone else rel()
    print("  stop:")
    stop_events = [(t, "process %d exited%s" % (pid, " (started during the stop: %s)" % names[pid] if pid in names else ""))
                   for pid, t in seen_gone.items()]
    stop_events.append((out["t"], "DELETE answered %d" % out["status"]))
    for t, what in sorted(stop_events):
        print("    %8.3f  %s" % (t, what))
    print("    %8.3f  no live process of the user left" % all_gone)

def median(xs):
    return statistics.median(xs) if xs else float("nan")

def report(results):
    """The table, from the lines 'metric impl value' in results."""
    data = {}
    for line in open(results):
        metric, impl, value = line.split()
        data.setdefault((metric, impl), []).append(float(value))
    def cell(metric, impl):
        xs = data.get((metric, impl))
        if not xs:
            return "-"
        return "%.2f (%.2f–%.2f)" % (median(xs), min(xs), max(xs))
    rows = [
        ("spawn to ready, 1 user (s)", "spawn1"),
        ("stop: DELETE answered, 1 user (s)", "stop1api"),
        ("stop to gone (answered + no process), 1 user (s)", "stop1"),
        ("spawn to ready, %s users at once: all ready (s)" % os.environ["USERS"], "spawn10"),
        ("  each user's own spawn to ready, median over users and rounds (s)", "spawn10each"),
        ("stop: all DELETEs answered, %s users (s)" % os.environ["USERS"], "stop10api"),
        ("stop to gone, %s users: all gone (s)" % os.environ["USERS"], "stop10"),
    ]
    print("| median (min–max) | JupyterHub 6.1.1 + Python sudospawner | jhub |")
    print("| --- | ---: | ---: |")
    for label, metric in rows:
        print("| %s | %s | %s |" % (label, cell(metric, "jupyterhub"), cell(metric, "jhub")))
    print("| server's own start-up, run directly (s) | %s | |" % cell("own_start", "direct"))
    print("| server's own shutdown, SIGTERM to gone (s) | %s | |" % cell("own_stop", "direct"))
    print()
    # paired by round: the hub's spawn minus the same round's direct start-up
    own = data.get(("own_start", "direct"), [])
    own_stop = data.get(("own_stop", "direct"), [])
    for impl, label in (("jupyterhub", "JupyterHub"), ("jhub", "jhub")):
        sp = data.get(("spawn1", impl), [])
        so = data.get(("stop1", impl), [])
        d = [a - b for a, b in zip(sp, own)]
        e = [a - b for a, b in zip(so, own_stop)]
        print("%s's own cost, per round (median (min–max)): start %+.2f s (%+.2f–%+.2f), stop %+.2f s (%+.2f–%+.2f)"
              % (label, median(d), min(d), max(d), median(e), min(e), max(e)))
    sp = data.get(("spawn1", "jhub"), [])
    so = data.get(("stop1", "jhub"), [])
    start_over = median([a - b for a, b in zip(sp, own)])
    stop_over = median([a - b for a, b in zip(so, own_stop)])
    polled = {k: int(sum(v)) for (m, k), v in data.items() if m == "polled"}
    print("Answers that were 202 (then the model was polled every %d ms): JupyterHub %d, jhub %d"
          % (POLL * 1000, polled.get("jupyterhub", 0), polled.get("jhub", 0)))
    print()
    print("Targets:")
    mark = lambda ok: "[x]" if ok else "[ ] (MISSED)"
    print("- %s jhub's spawn to ready at most the server's own start-up + 0.3 s (%+.2f s)" % (mark(start_over <= 0.3), start_over))
    print("- %s jhub's stop to gone under the server's own shutdown + 0.5 s (%+.2f s)" % (mark(stop_over < 0.5), stop_over))

globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
EOF
bench() { "$PY" "$work/bench.py" "$@"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export BENCH_TOKEN USERS
BENCH_TOKEN=$(random_hex)

# --- binaries, the mediator's directory, sudoers ------------------------------
mkdir -m 0755 "$work/bin" "$work/mediator"
install -m 0755 "$BIN_DIR/jhub" "$BIN_DIR/jhub-proxy" "$work/bin/"
ln -s "$REF_VENV/bin/sudospawner" "$work/mediator/sudospawner"
ln -s "$SERVER" "$work/mediator/jupyterhub-singleuser"
MEDIATOR=$work/mediator/sudospawner
echo "$HUB_USER ALL=(%$USERS_GROUP) NOPASSWD: $MEDIATOR" >"$work/sudoers"
visudo -cf "$work/sudoers" >/dev/null || die "the sudoers drop-in does not check"
install -m 0440 -o root -g root "$work/sudoers" "$DROPIN"

# --- bench users --------------------------------------------------------------
suffix=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
for i in $(seq -w 1 "$USERS"); do
    u=jhbs-$suffix-$i
    useradd -m -s /bin/bash -G "$USERS_GROUP" "$u"
    BENCH_USERS+=("$u")
done
say "bench users: ${BENCH_USERS[0]} .. ${BENCH_USERS[-1]}"
ONE=${BENCH_USERS[0]}

# --- the two hubs ---------------------------------------------------------------
declare -A PORT PUBLIC DIR
for hub in jhub jupyterhub; do
    DIR[$hub]=$work/$hub
    mkdir -m 0700 "${DIR[$hub]}"
    PORT[$hub]=$(free_port)
    PUBLIC[$hub]=http://127.0.0.1:$(free_port)
done
proxy_token=$(random_hex)
api_port=$(free_port)
cat >"${DIR[jhub]}/jhub.toml" <<EOF
[hub]
bind_url = "${PUBLIC[jhub]}"
hub_bind_url = "http://127.0.0.1:${PORT[jhub]}"
db_url = "sqlite://${DIR[jhub]}/jhub.sqlite"
cookie_secret_file = "${DIR[jhub]}/cookie_secret"
authenticator_class = "dummy"

[authenticator]
password = "$(random_hex)"

[spawner]
start_timeout = 120
http_timeout = 120

[proxy]
api_url = "http://127.0.0.1:$api_port"
should_start = true
command = ["$work/bin/jhub-proxy"]
auth_token = "$proxy_token"

[[services]]
name = "bench"
api_token = "$BENCH_TOKEN"

[[roles]]
name = "bench"
scopes = ["admin:users", "admin:servers", "tokens", "read:hub"]
services = ["bench"]
EOF
api_port=$(free_port)
cat >"${DIR[jupyterhub]}/jupyterhub_config.py" <<EOF
c = get_config()  # noqa
c.JupyterHub.bind_url = "${PUBLIC[jupyterhub]}/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = ${PORT[jupyterhub]}
c.JupyterHub.db_url = "sqlite:///${DIR[jupyterhub]}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "${DIR[jupyterhub]}/cookie_secret"
c.JupyterHub.pid_file = "${DIR[jupyterhub]}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "sudospawner.SudoSpawner"
c.SudoSpawner.sudospawner_path = "$MEDIATOR"
c.Spawner.cmd = ["$SERVER"]
c.Spawner.environment = {"PATH": "$(dirname "$SERVER"):/usr/local/bin:/usr/bin:/bin"}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.ConfigurableHTTPProxy.command = ["$CHP"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:$api_port"
c.ConfigurableHTTPProxy.auth_token = "$proxy_token"
c.ConfigurableHTTPProxy.pid_file = "${DIR[jupyterhub]}/proxy.pid"
c.JupyterHub.services = [{"name": "bench", "api_token": "$BENCH_TOKEN"}]
c.JupyterHub.load_roles = [
    {"name": "bench", "scopes": ["admin:users", "admin:servers", "tokens", "read:hub"], "services": ["bench"]}
]
EOF
chown -R "$HUB_USER:$HUB_USER" "${DIR[jhub]}" "${DIR[jupyterhub]}"
chmod 0600 "${DIR[jhub]}/jhub.toml" "${DIR[jupyterhub]}/jupyterhub_config.py"

say "starting jhub and JupyterHub as $HUB_USER"
(cd "${DIR[jhub]}" && exec setpriv --reuid="$HUB_USER" --regid="$HUB_USER" --init-groups -- \
    env -i HOME="${DIR[jhub]}" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin JHUB_LOG=info NO_COLOR=1 \
    "$work/bin/jhub" --config "${DIR[jhub]}/jhub.toml" </dev/null >"${DIR[jhub]}/jhub.log" 2>&1) &
HUB_PID[jhub]=$!
(cd "${DIR[jupyterhub]}" && exec setpriv --reuid="$HUB_USER" --regid="$HUB_USER" --init-groups -- \
    env -i HOME="${DIR[jupyterhub]}" LANG=C.UTF-8 PATH="$REF_VENV/bin:/usr/local/bin:/usr/bin:/bin" \
    "$REF_VENV/bin/jupyterhub" -f "${DIR[jupyterhub]}/jupyterhub_config.py" \
    </dev/null >"${DIR[jupyterhub]}/jupyterhub.log" 2>&1) &
HUB_PID[jupyterhub]=$!
for hub in jhub jupyterhub; do
    bench wait-hub "${PORT[$hub]}" 120 || { tail -n 30 "${DIR[$hub]}"/*.log >&2; die "$hub did not start"; }
    bench add-users "${PORT[$hub]}" "${BENCH_USERS[@]}"
done

results=$work/results
: >"$results"
record() { echo "$1 $2 $3" >>"$results"; }
field() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# spawn_stop HUB KIND USER...: one start and stop of the users' servers;
# records KIND's numbers (1 or 10) unless KIND is "warmup".
spawn_stop() {
    local hub=$1 kind=$2 out
    shift 2
    say "$hub: spawn $# user(s)"
    out=$(bench spawn "${PORT[$hub]}" "$@") || { tail -n 40 "${DIR[$hub]}"/*.log >&2; die "$hub: spawn failed"; }
    local ok=1
    if [[ $out == *'"errors"'* ]]; then
        ok=0
        say "$hub: the start of $# server(s) failed: $out"
        echo "$hub, $# user(s), start: $out" >>"$work/failures"
    fi
    if [[ $kind != warmup && $ok == 1 ]]; then
        record "spawn$kind" "$hub" "$(field "$out" all)"
        record polled "$hub" "$(field "$out" polled)"
        if [[ $kind == 10 ]]; then
            "$PY" -c 'import json, sys; print("\n".join("spawn10each %s %s" % (sys.argv[2], v) for v in json.loads(sys.argv[1])["each"]))' "$out" "$hub" >>"$results"
        fi
    fi
    sleep 1
    say "$hub: stop $# user(s)"
    out=$(bench stop "${PORT[$hub]}" "$@") || { tail -n 40 "${DIR[$hub]}"/*.log >&2; die "$hub: stop failed"; }
    if [[ $out != *'"stale": []'* ]]; then
        say "$hub: after the stop, the hub still lists as running: $out"
        echo "$hub, $# user(s), stop answered but still listed as running: $out" >>"$work/failures"
    fi
    if [[ $kind != warmup && $ok == 1 ]]; then
        record "stop$kind" "$hub" "$(field "$out" gone)"
        record "stop${kind}api" "$hub" "$(field "$out" api)"
        record polled "$hub" "$(field "$out" polled)"
    fi
    sleep 1
}
direct_run() {
    local kind=$1 out
    say "direct: $SERVER as $ONE"
    out=$(bench direct "${PORT[jhub]}" "${PUBLIC[jhub]}" "$SERVER" "$ONE" "$work/direct-$ONE.log") ||
        { tail -n 30 "$work/direct-$ONE.log" >&2; die "the direct run failed"; }
    if [[ $kind != warmup ]]; then
        record own_start direct "$(field "$out" start)"
        record own_stop direct "$(field "$out" stop)"
    fi
    sleep 1
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date +%s)
if [[ $WARMUP == 1 ]]; then
    say "warm-up (not counted)"
    spawn_stop jhub warmup "${BENCH_USERS[@]}"
    spawn_stop jupyterhub warmup "$ONE"
    direct_run warmup
fi
loads=()
for round in $(seq 1 "$ROUNDS"); do
    say "round $round/$ROUNDS"
    if ((round % 2)); then order=(jhub jupyterhub direct); else order=(direct jupyterhub jhub); fi
    for what in "${order[@]}"; do
        case $what in
            direct) direct_run count ;;
            *) spawn_stop "$what" 1 "$ONE" ;;
        esac
    done
    for what in "${order[@]}"; do
        [[ $what == direct ]] || spawn_stop "$what" 10 "${BENCH_USERS[@]}"
    done
    loads+=("$(cut -d' ' -f1 /proc/loadavg)")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started_at))

say "traced start and stop"
traces=$(
    echo "jhub (server log: ~$ONE/.jhub/logs/):"
    bench trace "${PORT[jhub]}" "$ONE" "$(ls -t /home/"$ONE"/.jhub/logs/*.log | head -n1)"
    sleep 1
    echo "JupyterHub (the server's log is relayed into the hub's):"
    bench trace "${PORT[jupyterhub]}" "$ONE" "${DIR[jupyterhub]}/jupyterhub.log"
) || die "the traced run failed"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "## Spawning and stopping servers: jhub and JupyterHub 6.1.1 ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "- machine: $(nproc) CPUs ($cpu), Linux $(uname -r)"
echo "- load average before / after: $load_before / $load_after; 1-min load after each round: ${loads[*]}; $ROUNDS rounds took ${elapsed} s"
if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 4) }'; then
    echo "- **the machine was busy: these numbers are noisy**"
fi
echo "- $("$work/bin/jhub" --version) with jhub-proxy and $HELPER ($helper_note); JupyterHub $("$REF_VENV/bin/jupyterhub" --version 2>/dev/null | tail -n1) with sudospawner $("$REF_VENV/bin/python" -c 'import sudospawner; print(sudospawner.__version__)' 2>/dev/null || echo '?') and configurable-http-proxy $("$CHP" --version 2>/dev/null)"
echo "- server: $SERVER (jupyterhub-singleuser $("$(dirname "$SERVER")/python" -c 'import jupyterhub; print(jupyterhub.__version__)'), JupyterLab $("$(dirname "$SERVER")/python" -c 'import jupyterlab; print(jupyterlab.__version__)')) for both hubs and the direct run"
echo "- $ROUNDS interleaved rounds after a warm-up; a POST or DELETE is timed from sending it; ready = the 201 answer, or the model polled every 50 ms after a 202; gone = answered and no live (non-zombie) process of the user's in /proc (scanned every 5 ms)"
echo
bench report "$results"
echo
if [[ -s $work/failures ]]; then
    echo "Failures (rounds left out of the medians; warm-up included):"
    echo
    sed 's/^/- /' "$work/failures"
    echo
fi
echo "Traced start and stop (seconds from the request):"
echo
echo "$traces"
failed=0

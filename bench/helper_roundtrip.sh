#!/usr/bin/env bash
# What one helper call costs the hub: the wall time of a `kill` (signal 0)
# round trip through `sudo -nH -u USER`, as the hub account, for our
# sudospawner and for the Python mediator (PyPI sudospawner 1.0.0), with
# `sudo -nH -u USER /bin/true` alone as the floor both share. Runs are
# interleaved (ours, Python's, bare sudo, ours, ...) so that a busy moment
# hits all three alike; medians are printed.
#
# Run as root after sudoers/install.sh and tests/setup-reference.sh:
#   sudo bench/helper_roundtrip.sh [ROUNDS]     (default 30)
#
# It creates the user jhbench-user (in jupyterhub-users) if missing, and a
# temporary sudoers drop-in for the Python mediator and /bin/true, checked
# with visudo and removed on exit.
set -euo pipefail

ROUNDS=${1:-30}
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 3 && ROUNDS <= 1000)) || {
    echo "usage: $0 [ROUNDS: 3 to 1000]" >&2
    exit 2
}
[[ $EUID -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
HUB_USER=jupyterhub
USER_NAME=jhbench-user
OURS=/usr/local/bin/sudospawner
PYTHON_MEDIATOR=/opt/jhub-test/venv/bin/sudospawner
DROPIN=/etc/sudoers.d/jhub-bench

for f in "$OURS" "$PYTHON_MEDIATOR"; do
    [[ -x $f ]] || { echo "$0: $f missing: run sudoers/install.sh and tests/setup-reference.sh" >&2; exit 1; }
done
"$ROOT/sudoers/add-user.sh" "$USER_NAME" >/dev/null

work=$(mktemp -d)
chmod 0755 "$work"
target_pid=
cleanup() {
    rm -f "$DROPIN"
    [[ -n $target_pid ]] && kill "$target_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/sudoers" <<EOF
$HUB_USER ALL=(%jupyterhub-users) NOPASSWD: $PYTHON_MEDIATOR, /bin/true
EOF
visudo -cf "$work/sudoers" >/dev/null
install -m 0440 -o root -g root "$work/sudoers" "$DROPIN"

# The process both helpers are asked about: one of the user's, alive.
runuser -u "$USER_NAME" -- sleep 600 2>/dev/null &
disown
for _ in $(seq 50); do
    target_pid=$(pgrep -n -u "$USER_NAME" -x sleep) && break
    sleep 0.1
done
[[ -n $target_pid ]] || { echo "$0: the target process did not start" >&2; exit 1; }
request="{\"action\": \"kill\", \"pid\": $target_pid, \"signal\": 0}"

cat >"$work/measure.py" <<'EOF'
import json, statistics, subprocess, sys, time

rounds, user, ours, python_mediator, request = sys.argv[1:6]
rounds = int(rounds)
cases = {
    "sudospawner (jhub)": ["sudo", "-nH", "-u", user, ours, "--logging=INFO"],
    "sudospawner (Python 1.0.0)": ["sudo", "-nH", "-u", user, python_mediator, "--logging=INFO"],
    "sudo /bin/true": ["sudo", "-nH", "-u", user, "/bin/true"],
}
times = {name: [] for name in cases}
for _ in range(rounds):
    for name, cmd in cases.items():
        start = time.perf_counter()
        out = subprocess.run(cmd, input=request.encode(), capture_output=True)
        elapsed = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(f"{name} failed ({out.returncode}): {out.stderr.decode()}")
        if name != "sudo /bin/true":
            answer = json.loads(out.stdout[out.stdout.index(b"{"):])
            if answer != {"ok": True, "alive": True}:
                sys.exit(f"{name} answered {answer}")
        times[name].append(elapsed * 1000)

floor = statistics.median(times["sudo /bin/true"])
print(f"kill (signal 0) round trips, hub account -> sudo -nH -u {user}, {rounds} interleaved rounds:")
print(f"{'':28} {'median ms':>10} {'p90 ms':>8} {'own cost ms':>12}")
own = {}
for name, ts in times.items():
    med = statistics.median(ts)
    p90 = statistics.quantiles(ts, n=10)[-1]
    own[name] = med - floor
    cost = "" if name == "sudo /bin/true" else f"{own[name]:12.1f}"
    print(f"{name:28} {med:10.1f} {p90:8.1f} {cost}")
ratio = own["sudospawner (Python 1.0.0)"] / max(own["sudospawner (jhub)"], 0.01)
print(f"the Python mediator's own cost is {ratio:.0f}x ours (own cost = median minus sudo /bin/true)")
EOF

cd "$work"
runuser -u "$HUB_USER" -- /usr/bin/python3 "$work/measure.py" "$ROUNDS" "$USER_NAME" "$OURS" "$PYTHON_MEDIATOR" "$request"

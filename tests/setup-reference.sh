#!/usr/bin/env bash
# Installs the reference implementations the compatibility tests and the
# benchmarks compare jhub against, in world-readable places outside the
# clone, so that the hub user and the test users can run them:
#
#   /opt/jhub-test/venv   JupyterHub 6.1.1, the Python sudospawner 1.0.0
#                         mediator and jupyterhub-idle-culler 2.0.0, built
#                         from Debian's /usr/bin/python3
#   /opt/jhub-test/schemathesis
#                         schemathesis 4.32.5, which checks the hub's REST
#                         API against the reference spec (its own venv, so
#                         its dependencies never meet JupyterHub's)
#   /opt/jhub-test/chp    configurable-http-proxy 5.3.0 from npm
#   /opt/jhub-test/playwright
#                         playwright-core 1.64.1 from npm, without a browser
#                         of its own: tests/browser/lab-flow.mjs drives
#                         Debian's /usr/bin/chromium with it
#
# and the load tools the benchmarks use (wrk, nginx, hyperfine). Run as
# root; safe to run again: what is present at the pinned version is kept.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup-reference.sh: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root"
umask 022

BASE=/opt/jhub-test
VENV=$BASE/venv
PY_PINS=(jupyterhub==6.1.1 sudospawner==1.0.0 jupyterhub-idle-culler==2.0.0)
ST_VENV=$BASE/schemathesis
ST_PIN=schemathesis==4.32.5
CHP_DIR=$BASE/chp
CHP_VERSION=5.3.0
PW_DIR=$BASE/playwright
PW_VERSION=1.64.1
PACKAGES=(python3-venv nodejs npm wrk nginx-light hyperfine procps chromium)

missing=()
for p in "${PACKAGES[@]}"; do
    # nodejs may come from another source than Debian with npm inside it.
    case "$p" in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx-light starts a server on port 80 on install; the benchmarks run
# their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active -q nginx 2>/dev/null; then
    systemctl stop nginx || true
fi

install -d -m 0755 "$BASE"

# venv_ok VENV PIN...: whether VENV has exactly these pinned versions
venv_ok() {
    local venv=$1 pin
    shift
    [[ -x $venv/bin/python ]] || return 1
    for pin in "$@"; do
        [[ $("$venv/bin/python" -m pip show "${pin%%==*}" 2>/dev/null | sed -n 's/^Version: //p') == "${pin#*==}" ]] || return 1
    done
}
if venv_ok "$VENV" "${PY_PINS[@]}"; then
    say "reference venv: ${PY_PINS[*]} present in $VENV"
else
    say "reference venv: installing ${PY_PINS[*]} into $VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_PINS[@]}"
fi
if venv_ok "$ST_VENV" "$ST_PIN"; then
    say "schemathesis venv: $ST_PIN present in $ST_VENV"
else
    say "schemathesis venv: installing $ST_PIN into $ST_VENV"
    /usr/bin/python3 -m venv "$ST_VENV"
    "$ST_VENV/bin/python" -m pip install -q --disable-pip-version-check "$ST_PIN"
fi
"$ST_VENV/bin/schemathesis" --version >/dev/null || die "$ST_VENV/bin/schemathesis does not run"
chmod -R a+rX "$BASE"

chp=$CHP_DIR/node_modules/.bin/configurable-http-proxy
if [[ -x $chp ]] && [[ $(node -p "require('$CHP_DIR/node_modules/configurable-http-proxy/package.json').version") == "$CHP_VERSION" ]]; then
    say "configurable-http-proxy $CHP_VERSION present in $CHP_DIR"
else
    say "installing configurable-http-proxy $CHP_VERSION into $CHP_DIR"
    install -d -m 0755 "$CHP_DIR"
    npm install --silent --no-audit --no-fund --prefix "$CHP_DIR" "configurable-http-proxy@$CHP_VERSION" >/dev/null
fi
chmod -R a+rX "$CHP_DIR"
"$chp" --version >/dev/null || die "$chp does not run"

pw_json=$PW_DIR/node_modules/playwright-core/package.json
if [[ -f $pw_json ]] && [[ $(node -p "require('$pw_json').version") == "$PW_VERSION" ]]; then
    say "playwright-core $PW_VERSION present in $PW_DIR"
else
    say "installing playwright-core $PW_VERSION into $PW_DIR"
    install -d -m 0755 "$PW_DIR"
    # playwright-core downloads no browser on install; the flow launches
    # /usr/bin/chromium through executablePath.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
        --prefix "$PW_DIR" "playwright-core@$PW_VERSION" >/dev/null
fi
chmod -R a+rX "$PW_DIR"
# (Debian's launcher script may warn on stderr about /dev/shm in containers.)
/usr/bin/chromium --version >/dev/null 2>&1 || die "/usr/bin/chromium --version fails"
say "reference stack ready: $VENV, $ST_VENV, $chp, $PW_DIR"

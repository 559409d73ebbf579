#!/usr/bin/env bash
# Installs jhub on a Debian machine and starts it: packages, binaries,
# accounts, the helper configuration, the sudoers drop-in, the notebook
# server's Python venv, the hub's configuration and service, then the hub
# (which starts its proxy) at http://127.0.0.1:8000. Run as root from a
# clone of the repository. Safe to run again: every step checks first and
# changes only what is missing or wrong; a running hub is restarted (its
# proxy and the users' servers keep running).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: sudo ./sudoers/install.sh [--no-build] [--no-venv] [--no-start]

Installs jhub on this Debian machine (see sudoers/README.md):
  Debian packages, /usr/local/bin/{jhub,jhub-proxy,sudospawner},
  the jupyterhub user and the jupyterhub-users group, /etc/jhub,
  /var/lib/jhub, /etc/jhub/sudospawner.toml (only if missing),
  /etc/sudoers.d/jhub, the server venv /opt/jhub/venv,
  /etc/jhub/jhub.toml (only if missing), /usr/local/sbin/jhubctl and the
  systemd unit jhub.service; then starts the hub (jhubctl start).

  --no-build  install binaries already built in target/release
  --no-venv   skip the Python venv
  --no-start  install only; leave the hub as it is
  --help      show this text
EOF
}

build=1
venv=1
start=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --no-venv) venv=0 ;;
        --no-start) start=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (sudo $0)"

# Files created here are meant for everyone to read unless set otherwise.
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
HERE=$ROOT/sudoers

HUB_USER=jupyterhub
USERS_GROUP=jupyterhub-users
STATE_DIR=/var/lib/jhub
CONF_DIR=/etc/jhub
HELPER_CONF=$CONF_DIR/sudospawner.toml
HUB_CONF=$CONF_DIR/jhub.toml
LOG_DIR=/var/log/jhub
CTL=/usr/local/sbin/jhubctl
UNIT=/etc/systemd/system/jhub.service
SUDOERS_FILE=/etc/sudoers.d/jhub
BIN_DIR=/usr/local/bin
BINARIES=(jhub jhub-proxy sudospawner)
VENV=/opt/jhub/venv
PY_PINS=(jupyterhub==6.1.1 jupyterlab==4.6.6 jupyter-server-proxy==4.6.0)
PACKAGES=(sudo libpam0g-dev python3-venv pkg-config gcc tini ca-certificates)
MIN_RUST=1.85

# ensure_dir PATH OWNER:GROUP MODE: creates PATH, or fixes its owner and mode.
ensure_dir() {
    local path=$1 owner=$2 mode=$3
    if [[ -L $path || (-e $path && ! -d $path) ]]; then
        die "$path exists and is not a directory"
    fi
    if [[ ! -d $path ]]; then
        install -d -o "${owner%:*}" -g "${owner#*:}" -m "$mode" "$path"
        say "created $path ($owner $mode)"
    else
        fix_attrs "$path" "$owner" "$mode"
    fi
}

# fix_attrs PATH OWNER:GROUP MODE: sets owner and mode where they differ.
fix_attrs() {
    local path=$1 owner=$2 mode=$3
    if [[ $(stat -c %U:%G "$path") != "$owner" ]]; then
        chown "$owner" "$path"
        say "set the owner of $path to $owner"
    fi
    if (($((8#$(stat -c %a "$path"))) != $((8#$mode)))); then
        chmod "$mode" "$path"
        say "set the mode of $path to $mode"
    fi
}

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    say "packages: all present"
else
    say "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Only the missing ones: a rerun upgrades nothing behind the admin's back.
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Binaries --------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
release=$target_dir/release

if ((build)); then
    cargo=$(command -v cargo || true)
    for candidate in "${HOME:-/root}/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
        [[ -n $cargo ]] && break
        [[ -x $candidate ]] && cargo=$candidate
    done
    need_rust="a Rust toolchain >= $MIN_RUST is needed to build jhub; install it with rustup (https://rustup.rs), or build elsewhere and use --no-build"
    [[ -n $cargo ]] || die "cargo not found on PATH, in \$HOME/.cargo/bin or /root/.cargo/bin: $need_rust"
    have=$("$cargo" --version | awk '{print $2}')
    have=${have%%-*}
    if [[ $(printf '%s\n' "$MIN_RUST" "$have" | sort -V | head -n1) != "$MIN_RUST" ]]; then
        die "$cargo is version $have: $need_rust"
    fi
    locked=(--locked)
    [[ -f $ROOT/Cargo.lock ]] || locked=()
    say "building with $cargo ($have)"
    (cd "$ROOT" && "$cargo" build --release "${locked[@]}" --workspace --bins)
fi

for bin in "${BINARIES[@]}"; do
    src=$release/$bin
    [[ -x $src ]] || die "$src is missing; build first (without --no-build)"
    dst=$BIN_DIR/$bin
    if cmp -s "$src" "$dst"; then
        fix_attrs "$dst" root:root 0755
    else
        install -o root -g root -m 0755 "$src" "$dst"
        say "installed $dst"
    fi
done
say "binaries: ${BINARIES[*]} in $BIN_DIR"

# --- Accounts --------------------------------------------------------------
if ! getent group "$USERS_GROUP" >/dev/null; then
    groupadd --system "$USERS_GROUP"
    say "created group $USERS_GROUP"
fi
if ! id -u "$HUB_USER" >/dev/null 2>&1; then
    # The user's own group: created with it, or reused if it already exists.
    if getent group "$HUB_USER" >/dev/null; then group_opt=(--gid "$HUB_USER"); else group_opt=(--user-group); fi
    useradd --system "${group_opt[@]}" --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "jhub hub and proxy" "$HUB_USER"
    say "created system user $HUB_USER"
fi
# PAM's unix module, run by a non-root hub, reads /etc/shadow through group shadow.
if ! id -nG "$HUB_USER" | tr ' ' '\n' | grep -qx shadow; then
    usermod -a -G shadow "$HUB_USER"
    say "added $HUB_USER to group shadow"
fi
say "accounts: user $HUB_USER, group $USERS_GROUP"

# --- Directories and the helper configuration ------------------------------
ensure_dir "$CONF_DIR" root:root 0755
ensure_dir "$STATE_DIR" "$HUB_USER:$HUB_USER" 0700

if [[ -L $HELPER_CONF ]]; then
    die "$HELPER_CONF is a symbolic link; the helper refuses it, make it a regular file"
elif [[ -e $HELPER_CONF ]]; then
    say "$HELPER_CONF exists; left as it is"
else
    install -o root -g root -m 0644 "$HERE/sudospawner.toml" "$HELPER_CONF"
    say "wrote $HELPER_CONF"
fi
fix_attrs "$HELPER_CONF" root:root 0644

# --- sudoers drop-in -------------------------------------------------------
# Validated as a temporary file first and moved into place only when visudo
# accepts it, so a broken file never reaches /etc/sudoers.d.
if cmp -s "$HERE/jhub.sudoers" "$SUDOERS_FILE"; then
    fix_attrs "$SUDOERS_FILE" root:root 0440
    say "$SUDOERS_FILE is up to date"
else
    tmp=$(mktemp /etc/jhub.sudoers.XXXXXX)
    trap 'rm -f "$tmp"' EXIT
    cat "$HERE/jhub.sudoers" >"$tmp"
    chown root:root "$tmp"
    chmod 0440 "$tmp"
    if ! visudo -cqf "$tmp"; then
        visudo -cf "$tmp" >&2 || true
        die "$HERE/jhub.sudoers does not pass visudo; $SUDOERS_FILE left unchanged"
    fi
    mv -f "$tmp" "$SUDOERS_FILE"
    trap - EXIT
    say "installed $SUDOERS_FILE"
fi
if ! grep -Eq '^[@#]includedir[[:space:]]+/etc/sudoers\.d/?[[:space:]]*$' /etc/sudoers; then
    echo "install.sh: warning: /etc/sudoers does not include /etc/sudoers.d; the drop-in has no effect" >&2
fi
visudo -cq || echo "install.sh: warning: visudo -c reports a problem in the sudoers configuration" >&2

# --- Python venv for the notebook server -----------------------------------
if ((venv)); then
    # Debian's interpreter, not whatever python3 is first on PATH: the venv
    # links to its interpreter, which every user must be able to run.
    python=/usr/bin/python3
    [[ -x $python ]] || die "$python is missing (Debian package python3)"
    ensure_dir "$(dirname "$VENV")" root:root 0755
    if [[ -f $VENV/pyvenv.cfg ]] && ! grep -Eq '^home = /usr/bin/?$' "$VENV/pyvenv.cfg"; then
        say "venv: $VENV was made from another Python; recreating it"
        "$python" -m venv --clear "$VENV"
    elif [[ ! -x $VENV/bin/python ]]; then
        "$python" -m venv "$VENV"
        say "venv: created $VENV"
    fi
    # Names and versions pip reports, as name==version lines.
    installed=$("$VENV/bin/pip" show --disable-pip-version-check "${PY_PINS[@]%%==*}" 2>/dev/null |
        awk '/^Name:/ { n = tolower($2); gsub("_", "-", n) } /^Version:/ { print n "==" $2 }' | sort || true)
    wanted=$(printf '%s\n' "${PY_PINS[@]}" | sort)
    if [[ -x $VENV/bin/jupyterhub-singleuser && $installed == "$wanted" ]]; then
        say "venv: ${PY_PINS[*]} present"
    else
        say "venv: installing ${PY_PINS[*]} (this takes a minute)"
        # The caller's Python settings must not leak into the venv.
        env -u PYTHONPATH -u PYTHONHOME -u PIP_USER -u PIP_TARGET -u PIP_PREFIX \
            "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PINS[@]}"
    fi
    # Root-owned, readable by everyone, writable by root only: users' servers
    # run from here, and the helper configuration points here.
    if [[ -n $(find "$VENV" \( ! -user root -o ! -group root \) -print -quit) ]]; then
        chown -hR root:root "$VENV"
        say "venv: set owner root:root"
    fi
    if [[ -n $(find "$VENV" ! -type l \( -perm /022 -o ! -perm -004 -o \( -type d ! -perm -001 \) \) -print -quit) ]]; then
        find "$VENV" ! -type l -exec chmod go-w,a+rX {} +
        say "venv: made world-readable, writable by root only"
    fi
fi

# --- The hub's configuration, service and start -----------------------------
if [[ -e $HUB_CONF ]]; then
    say "$HUB_CONF exists; left as it is"
else
    # Every key documented and commented out: the embedded defaults.
    tmp=$(mktemp "$CONF_DIR/jhub.toml.XXXXXX")
    "$BIN_DIR/jhub" --generate-config >"$tmp"
    chown "root:$HUB_USER" "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$HUB_CONF"
    say "wrote $HUB_CONF (the defaults, every key commented out)"
fi
fix_attrs "$HUB_CONF" "root:$HUB_USER" 0640
ensure_dir "$LOG_DIR" "$HUB_USER:$HUB_USER" 0750
install -o root -g root -m 0755 "$HERE/jhubctl" "$CTL"
if [[ -d /etc/systemd/system ]]; then
    install -o root -g root -m 0644 "$HERE/jhub.service" "$UNIT"
    if [[ -d /run/systemd/system ]]; then
        systemctl daemon-reload
        systemctl enable -q jhub
    fi
fi
say "service: $CTL (start|stop|restart|status)"

if ((start)); then
    if ((venv == 0)) && [[ ! -x $VENV/bin/jupyterhub-singleuser ]]; then
        echo "install.sh: warning: no server venv (--no-venv): the hub starts, servers will not" >&2
    fi
    "$CTL" restart
fi

# --- Summary ---------------------------------------------------------------
cat <<EOF

jhub is installed:
  binaries        $BIN_DIR/{jhub,jhub-proxy,sudospawner}
  accounts        user $HUB_USER (runs hub and proxy), group $USERS_GROUP (may get a server)
  state           $STATE_DIR
  helper config   $HELPER_CONF
  sudoers         $SUDOERS_FILE
EOF
if ((venv)); then
    echo "  server venv     $VENV (${PY_PINS[*]})"
else
    echo "  server venv     skipped (--no-venv); the helper config runs $VENV/bin/jupyterhub-singleuser"
fi
cat <<EOF

Add a user who may get a server:
  sudo $HERE/add-user.sh NAME [--password-stdin]
then open http://127.0.0.1:8000 and log in as NAME with that password.
The hub: sudo jhubctl start|stop|restart|status (log: $LOG_DIR/jhub.log)
EOF

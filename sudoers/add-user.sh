#!/usr/bin/env bash
# Creates a local Unix user who may get a notebook server from jhub: a
# member of jupyterhub-users. Safe to run again for the same name.
set -euo pipefail

GROUP=jupyterhub-users
HUB_USER=jupyterhub

usage() {
    cat <<'EOF'
usage: sudo ./sudoers/add-user.sh NAME [--password-stdin]

Creates the local user NAME (home directory, shell /bin/bash) if missing and
adds it to the group jupyterhub-users, which lets the hub start a server as
NAME. With --password-stdin, the first line of stdin becomes NAME's password
(for logging in through PAM).
EOF
}

die() { printf 'add-user.sh: %s\n' "$*" >&2; exit 1; }

name=
password_stdin=0
for arg in "$@"; do
    case "$arg" in
        --password-stdin) password_stdin=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "add-user.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
        *)
            [[ -z $name ]] || { echo "add-user.sh: one NAME only" >&2; usage >&2; exit 2; }
            name=$arg
            ;;
    esac
done
[[ -n $name ]] || { usage >&2; exit 2; }

# The portable subset of Debian's user names: lower case, starts with a
# letter or underscore, at most 32 characters.
if [[ ! $name =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; then
    die "invalid user name '$name': use 1 to 32 of a-z 0-9 _ -, starting with a-z or _"
fi
[[ $EUID -eq 0 ]] || die "run as root (sudo $0 $*)"
getent group "$GROUP" >/dev/null || die "group $GROUP does not exist; run sudoers/install.sh first"
[[ $name != "$HUB_USER" ]] || die "$HUB_USER runs the hub and may not get a server itself"

# Read the password before changing anything, so a missing one changes nothing.
if ((password_stdin)); then
    password=
    IFS= read -r password || true
    [[ -n $password ]] || die "--password-stdin: no password on stdin"
fi

if uid=$(id -u "$name" 2>/dev/null); then
    # Never hand a system account (root, daemons) to the hub.
    uid_min=$(awk '$1 == "UID_MIN" { print $2 }' /etc/login.defs 2>/dev/null)
    if ((uid < ${uid_min:-1000})); then
        die "$name is a system account (uid $uid); refusing to let the hub start servers as it"
    fi
    echo "user $name exists"
else
    # A private home (0700): on Debian new homes are world-readable by
    # default, and each user's notebook server writes their files there.
    useradd -m -K HOME_MODE=0700 -s /bin/bash "$name"
    chmod 0700 "$(getent passwd "$name" | cut -d: -f6)"
    echo "created user $name (home directory mode 0700)"
fi

if id -nG "$name" | tr ' ' '\n' | grep -qx "$GROUP"; then
    echo "$name is in $GROUP"
else
    usermod -a -G "$GROUP" "$name"
    echo "added $name to $GROUP"
fi

if ((password_stdin)); then
    # printf is a shell builtin: the password never appears in a command line.
    printf '%s:%s\n' "$name" "$password" | chpasswd
    echo "set the password of $name"
elif [[ $(passwd -S "$name" | awk '{ print $2 }') != P ]]; then
    echo "note: $name has no usable password yet; set one with: passwd $name"
fi

#!/usr/bin/env bash
# Run a command inside a Debian root of a given release, with this
# repository and the host's Rust toolchain: how the CPython matrix
# (tests/matrix.sh) and the Debian 13 package (packaging/build.sh
# --suite trixie) build and test rwsgi against another distribution's
# Python.
#
#   bash tests/debian-root.sh SUITE COMMAND [ARG...]
#
# SUITE is bookworm (CPython 3.11), trixie (3.13) or sid (3.14). The root
# is made once with debootstrap (minbase) and cached in
# target/roots/$SUITE (RWSGI_ROOT_NAME names another one, for two uses of
# one release at a time); it holds the release's python3 with its
# development files and venv, a C toolchain, and the programs the test
# suite drives (nginx, HAProxy, ab, curl, openssl, tmux, iproute2).
# COMMAND runs as root in /src, which is this repository (read-write),
# with the host's ~/.rustup (read-only) and ~/.cargo bound at the same
# paths, and /proc, /sys, /dev, /dev/pts and /dev/shm mounted; all are
# unmounted, and whatever still runs in the root is killed, when it ends.
# Its exit status is the command's. Uses of one root take turns (a lock
# file beside it): a second waits until the first has ended.
#
# The host's /etc/resolv.conf and local certificate authorities
# (/usr/local/share/ca-certificates) are copied in, kept up to date at
# every run.
#
# Needs root (debootstrap, chroot, mount) and Debian's archive
# (deb.debian.org, or DEBIAN_MIRROR). Unstable's Release file is checked
# without its expiry date: a mirror's copy of sid can be days old.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

(($# >= 2)) || { echo "usage: $0 SUITE COMMAND [ARG...]" >&2; exit 2; }
SUITE=$1
shift
case $SUITE in
    bookworm | trixie | sid) ;;
    *) echo "debian-root.sh: unknown suite $SUITE (bookworm, trixie or sid)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "debian-root.sh: run as root (debootstrap, chroot, mount)" >&2; exit 2; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$REPO/target/roots/${RWSGI_ROOT_NAME:-$SUITE}
RUSTUP=${RUSTUP_HOME:-$HOME/.rustup}
CARGO=${CARGO_HOME:-$HOME/.cargo}

PACKAGES=(
    # Build: the release's Python with its headers and libpython, a C
    # toolchain for cargo's linker and the crates that build C.
    python3 python3-dev python3-venv gcc libc6-dev make pkg-config
    # What tests/run.sh would install on the host.
    ca-certificates curl procps nginx haproxy apache2-utils openssl tmux util-linux iproute2
    # For the package build (packaging/build.sh): dpkg tools.
    dpkg-dev fakeroot file git
)

# One use of a root at a time: the end of a use kills whatever runs in the
# root, another use's commands included. A second use waits for the first
# (the lock is held by this script, not by the command in the root).
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
if ! flock -n 9; then
    echo "debian-root.sh: $ROOT is in use; waiting for that use to end" >&2
    flock 9
fi

if [ ! -e "$ROOT/.complete" ]; then
    printf '\n==> debootstrap %s into %s (once; cached)\n' "$SUITE" "$ROOT"
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
    }
    rm -rf "$ROOT" "$ROOT.tmp"
    mkdir -p "$(dirname "$ROOT")"
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$ROOT.tmp" "$MIRROR"
    cp /etc/resolv.conf "$ROOT.tmp/etc/resolv.conf"
    echo 'Acquire::Check-Valid-Until "false";' > "$ROOT.tmp/etc/apt/apt.conf.d/99rwsgi-no-expiry"
    # No service starts inside the root when its package is installed.
    printf '#!/bin/sh\nexit 101\n' > "$ROOT.tmp/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT.tmp/usr/sbin/policy-rc.d"
    timeout 600 chroot "$ROOT.tmp" apt-get update -qq
    timeout 1200 chroot "$ROOT.tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    chroot "$ROOT.tmp" apt-get clean
    touch "$ROOT.tmp/.complete"
    mv "$ROOT.tmp" "$ROOT"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The host's own certificate authorities (Debian keeps local ones in
# /usr/local/share/ca-certificates), so that downloads in the root (pip, in
# the test suite) trust what the host trusts: where PyPI is reached through
# a proxy with its own CA, the root's stock bundle refuses it.
if [ -d /usr/local/share/ca-certificates ] &&
    ! diff -rq /usr/local/share/ca-certificates "$ROOT/usr/local/share/ca-certificates" >/dev/null 2>&1; then
    rm -rf "$ROOT/usr/local/share/ca-certificates"
    cp -r /usr/local/share/ca-certificates "$ROOT/usr/local/share/ca-certificates"
    chroot "$ROOT" update-ca-certificates --fresh >/dev/null 2>&1
fi

MOUNTS=()
bind() { # bind SOURCE TARGET [ro]
    mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
    [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}
cleanup() {
    local proc pid i
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [ "$(readlink "$proc/root" 2>/dev/null)" = "$ROOT" ] && kill -KILL "$pid" 2>/dev/null || true
    done
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || true
    done
}
trap cleanup EXIT

mkdir -p "$ROOT/proc" "$ROOT/sys"
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
bind /dev "$ROOT/dev"
bind /dev/pts "$ROOT/dev/pts"
mkdir -p "$ROOT/dev/shm"
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm" && MOUNTS+=("$ROOT/dev/shm")
mount -t tmpfs -o mode=1777 tmp "$ROOT/tmp" && MOUNTS+=("$ROOT/tmp")
mount -t tmpfs -o mode=755 run "$ROOT/run" && MOUNTS+=("$ROOT/run")
bind "$REPO" "$ROOT/src"
bind "$RUSTUP" "$ROOT/$RUSTUP" ro
bind "$CARGO" "$ROOT/$CARGO"

status=0
chroot "$ROOT" /usr/bin/env -i \
    PATH="$CARGO/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME="$HOME" RUSTUP_HOME="$RUSTUP" CARGO_HOME="$CARGO" LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    DEBIAN_FRONTEND=noninteractive RWSGI_DEBIAN_ROOT="$SUITE" \
    bash -c 'exec 9>&-; cd /src && exec "$@"' _ "$@" || status=$?
exit "$status"

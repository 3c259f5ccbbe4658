#!/usr/bin/env bash
# The project's test command: builds rwsgi, runs the Rust tests, then the
# Python integration suite against the freshly built binary, then (as
# root) the multi-host test (tests/multihost), the wheel's install test
# (packaging/wheel/test.sh) and the packages' (packaging/test.sh, for
# Debian 12 and, with --suite trixie, Debian 13); RWSGI_SKIP_PACKAGING=1
# leaves those three out. Last (as root, on a full run) comes the CPython
# matrix, tests/matrix.sh: the Rust and integration tests again inside
# Debian 13 and unstable roots, against CPython 3.13 and 3.14;
# RWSGI_SKIP_MATRIX=1 leaves it out.
#
#   bash tests/run.sh            (from anywhere; it works from the repo root)
#
# Extra arguments are passed to pytest, e.g. `bash tests/run.sh -k environ -x`
# (such a focused run leaves the packaging test and the matrix out).
#
# Environment: RWSGI_VENV, the test virtualenv (.venv); CARGO_TARGET_DIR,
# cargo's (target); RWSGI_SKIP_PACKAGING=1 leaves the packaging test out;
# RWSGI_SKIP_MATRIX=1 the CPython matrix. The matrix runs this script inside
# Debian roots with the first two set and both skips.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD

# The root-only steps at the end: "1" if one runs, else why not (said at
# its place). A missing root is said now rather than after the rest has run.
nargs=$#
late_step() { # late_step SKIP_VARIABLE WHAT_NEEDS_ROOT
    if [ "${!1:-0}" = 1 ]; then
        echo "skipped ($1=1)"
    elif ((nargs)); then
        echo "skipped (pytest arguments given: a focused run)"
    elif [ "$(id -u)" -ne 0 ]; then
        echo "error: $2 needs root: run as root, or with $1=1" >&2
        return 1
    else
        echo 1
    fi
}
packaging=$(late_step RWSGI_SKIP_PACKAGING \
    "the multi-host, wheel and packaging tests at the end (namespaces, debootstrap, mounts, systemd-nspawn)") || exit 1
matrix=$(late_step RWSGI_SKIP_MATRIX "the CPython matrix at the end (debootstrap, chroot, mounts)") || exit 1

step() { printf '\n==> %s\n' "$*"; }

# Keep the work tree free of __pycache__ directories.
export PYTHONDONTWRITEBYTECODE=1

# --- Debian packages (installed only when something is missing) -------------
missing=()
# A C linker for cargo (rustup's Rust brings none).
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# pgrep, used by the process tests to find a master's workers.
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
# Real front ends for test_nginx.py and test_haproxy.py (run from their
# sbin paths, which a non-root PATH may lack), ab for load through them, and
# openssl for their self-signed test certificate.
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v ab >/dev/null 2>&1 || missing+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# tmux drives `rwsgi top` in a terminal (test_control.py); setpriv (util-linux)
# connects as another user.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
# ip (iproute2) makes the network namespaces of tests/multihost.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    # Debian's own python3 ships venv/ensurepip separately.
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    step "Installing Debian packages: ${missing[*]}"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python virtual environment for the test suite --------------------------
VENV=${RWSGI_VENV:-$REPO_ROOT/.venv}
if [ ! -x "$VENV/bin/python" ]; then
    step "Creating $VENV"
    python3 -m venv "$VENV"
fi
step "Installing Python test requirements"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt

# --- Rust build and unit tests ----------------------------------------------
step "cargo build"
cargo build

step "cargo test"
cargo test

# --- Integration tests -------------------------------------------------------
RWSGI_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/rwsgi
if [ ! -x "$RWSGI_BIN" ]; then
    echo "error: $RWSGI_BIN was not built" >&2
    exit 1
fi
export RWSGI_BIN

step "pytest tests/integration"
# As root, everything the suite uses is installed above: no test may skip.
if [ "$(id -u)" -eq 0 ]; then
    export RWSGI_NO_SKIPS=1
fi
"$VENV/bin/python" -m pytest tests/integration -q -p no:cacheprovider "$@"

# --- Several hosts behind HAProxy and nginx (network namespaces: root) -------
if [ "$packaging" != 1 ]; then
    step "multi-host test skipped with the packaging test ($packaging)"
else
    step "pytest tests/multihost"
    "$VENV/bin/python" -m pytest tests/multihost -q -s -p no:cacheprovider
fi

# --- The wheel, installed with pip into fresh virtualenvs: the host's CPython
# (3.11, pyenv's) and Debian 13's (3.13, in a Debian root; needs root).
if [ "$packaging" != 1 ]; then
    step "wheel test skipped with the packaging test ($packaging)"
else
    step "packaging/wheel/test.sh (host CPython)"
    bash packaging/wheel/test.sh --sdist "$(command -v python3)"
    step "packaging/wheel/test.sh (Debian 13's CPython, in a Debian root)"
    bash tests/debian-root.sh trixie bash packaging/wheel/test.sh /usr/bin/python3
fi

# --- Packages: build the .deb and .rpm, install them into a fresh Debian root
# (slower; needs root for debootstrap, mounts and systemd-nspawn): Debian
# 12's on this host, then Debian 13's, built in a trixie root
# (tests/debian-root.sh) and installed into a fresh trixie root. Both run;
# the step fails if either fails.
if [ "$packaging" != 1 ]; then
    step "packaging test $packaging"
else
    packaging_status=0
    step "packaging/test.sh (Debian 12, bookworm)"
    bash packaging/test.sh || packaging_status=1
    step "packaging/test.sh --suite trixie (Debian 13)"
    bash packaging/test.sh --suite trixie || packaging_status=1
    [ "$packaging_status" -eq 0 ] || exit 1
fi

# --- CPython matrix: the Rust and integration tests again, inside Debian 13
# (CPython 3.13) and unstable (3.14) roots, built against their python3
# (tests/matrix.sh; root, like the roots it runs in).
if [ "$matrix" != 1 ]; then
    step "CPython matrix $matrix"
else
    step "CPython matrix (tests/matrix.sh)"
    bash tests/matrix.sh
fi

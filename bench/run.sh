#!/usr/bin/env bash
# The benchmark: rwsgi against its peers, one worker on one core each.
#
#   bash bench/run.sh                 full run (3 rounds x 10 s, ~35 min)
#   bash bench/run.sh --quick         smoke run (1 round x 3 s)
#   bash bench/run.sh --only rwsgi,granian --scenarios hello_c16,flask
#   bash bench/run.sh --list          servers and scenarios
#
# It installs what is missing (Debian: wrk, nginx, libev-dev for bjoern,
# build-essential; a venv at bench/.venv from `python3`, the interpreter rwsgi
# is built against), builds rwsgi in release mode, and runs bench/bench.py,
# which installs the peers (bench/requirements.txt) and writes
# bench/RESULTS.md, bench/results.json and bench/results.png.
# Set RWSGI_BENCH_NO_BUILD=1 to use the existing target/release/rwsgi.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n==> %s\n' "$*"; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
[ -f /usr/include/ev.h ] || missing+=(libev-dev)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    step "Installing Debian packages: ${missing[*]}"
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
    step "Creating $VENV with $(command -v python3) ($(python3 -V 2>&1))"
    python3 -m venv "$VENV"
fi

if [ "${RWSGI_BENCH_NO_BUILD:-}" != 1 ]; then
    step "cargo build --release"
    cargo build --release
fi

step "bench/bench.py $*"
exec "$VENV/bin/python" bench/bench.py --command "bash bench/run.sh $*" "$@"

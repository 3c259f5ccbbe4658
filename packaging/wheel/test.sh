#!/usr/bin/env bash
# Install test for the rwsgi wheel, as a user installs it:
#
#   bash packaging/wheel/test.sh [--sdist] [PYTHON]   (default: python3 on PATH)
#
# Builds the wheel for PYTHON (packaging/wheel/build.sh), then, in a fresh
# virtualenv of PYTHON that is not activated: `pip install` the wheel and
# Flask (from PyPI), starts `VENV/bin/rwsgi -w 2 app:app` on a Flask app,
# and checks that
#   - a request is served, by the virtualenv's Flask;
#   - the workers run the libpython of PYTHON itself (sysconfig's LIBDIR,
#     or the loader's default for a system interpreter), not another
#     CPython of the same version the loader might find first;
#   - the launcher's library path is not in the application's environment;
#   - HUP reloads new code;
#   - `rwsgi --version` works, and a wheel built for another CPython
#     version is refused by pip;
#   - with --sdist: `pip install` of the source distribution (which
#     builds rwsgi with cargo, a few minutes) gives the same two programs,
#     which serve a request.
# Every check prints PASS or FAIL; exits 1 if any failed. The host's
# Python, and the Debian roots' (tests/debian-root.sh trixie bash
# packaging/wheel/test.sh), are tested this way by tests/run.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
SDIST=0
if [ "${1:-}" = --sdist ]; then
    SDIST=1
    shift
fi
PYTHON=$(command -v "${1:-python3}")
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
tag=$("$PYTHON" -c 'import sys; print("%d%d" % sys.version_info[:2])')
WORK=$(mktemp -d /tmp/rwsgi-wheel-test.XXXXXX)
PORT=${RWSGI_WHEEL_TEST_PORT:-18791}
MASTER=

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'PASS  %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$1"; }
check() {
    local name=$1 output
    shift
    if output=$("$@" 2>&1); then pass "$name"; else fail "$name"; printf '%s\n' "$output" | sed 's/^/      | /' | head -n 30; fi
}
cleanup() {
    local status=$?
    if [ -n "$MASTER" ] && kill -0 "$MASTER" 2>/dev/null; then
        kill -TERM "$MASTER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$MASTER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    printf '\n==> wheel test (%s): %d passed, %d failed\n' "$PYTHON" "$PASSED" "$FAILED"
    if [ "$FAILED" -eq 0 ] && [ "$status" -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; exit 1; fi
}
trap cleanup EXIT

printf '\n==> Building the wheel for %s\n' "$PYTHON"
bash packaging/wheel/build.sh "$PYTHON"
shopt -s nullglob
wheels=("$ROOT"/target/wheels/rwsgi-*-cp$tag-cp$tag-*.whl)
others=()
for w in "$ROOT"/target/wheels/rwsgi-*-cp3*.whl; do [[ $w == *-cp$tag-cp$tag-* ]] || others+=("$w"); done
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || { fail "exactly one cp$tag wheel in target/wheels (found ${#wheels[@]})"; exit 1; }
WHEEL=${wheels[0]}

printf '\n==> A fresh virtualenv: pip install %s flask\n' "$(basename "$WHEEL")"
VENV=$WORK/venv
"$PYTHON" -m venv "$VENV"
check "pip install the wheel and Flask into a fresh virtualenv" \
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$WHEEL" flask
check "rwsgi --version" bash -c '[[ $("$1" --version) == "rwsgi "* ]]' _ "$VENV/bin/rwsgi"
if ((${#others[@]})); then
    check "pip refuses a wheel for another CPython ($(basename "${others[0]}"))" \
        bash -c '! "$1" -m pip install -q --disable-pip-version-check --dry-run "$2" 2>/dev/null' _ "$VENV/bin/python" "${others[0]}"
fi

mkdir -p "$WORK/app"
write_app() {
    cat > "$WORK/app/app.py" <<EOF
import flask
app = flask.Flask(__name__)

@app.route("/")
def index():
    return "$1 flask " + flask.__file__

@app.route("/library-path")
def library_path():
    import os
    return os.environ.get("LD_LIBRARY_PATH", "")
EOF
}
write_app v1
# Not activated, from another directory: as a process manager starts it.
(cd "$WORK/app" && env -u VIRTUAL_ENV "$VENV/bin/rwsgi" -w 2 -b "127.0.0.1:$PORT" --pid "$WORK/rwsgi.pid" \
    app:app >"$WORK/rwsgi.log" 2>&1 &)
for _ in $(seq 100); do [ -s "$WORK/rwsgi.pid" ] && curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.2; done
MASTER=$(cat "$WORK/rwsgi.pid" 2>/dev/null || true)
body=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/" || true)
check "a request is served, by the virtualenv's Flask: $body" bash -c '[[ $1 == "v1 flask $2/"* ]]' _ "$body" "$VENV/lib"
[ -n "$MASTER" ] || { cat "$WORK/rwsgi.log"; exit 1; }

worker=$(pgrep -P "$MASTER" -f '^rwsgi: worker' | head -n 1 || true)
libdir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
lib=$(grep -o '/[^ ]*libpython3[^ ]*\.so[^ ]*' "/proc/$worker/maps" | head -n 1 || true)
check "the worker runs $PYTHON's own libpython ($lib)" bash -c \
    '[ "$(readlink -f "$1")" = "$(readlink -f "$2/$(basename "$1")")" ]' _ "$lib" "$libdir"
seen=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/library-path" || true)
check "the launcher's library path is not in the application's environment (LD_LIBRARY_PATH=$seen)" \
    bash -c '[[ ":$1:" != *":$2:"* ]]' _ "$seen" "$libdir"

# Another length too: a .pyc is only checked against the source's size
# and its mtime in whole seconds.
write_app v2-reloaded
kill -HUP "$MASTER"
# serves PORT PREFIX: the server on PORT answers with PREFIX within 20 s.
serves() {
    local _
    for _ in $(seq 100); do
        [[ $(curl -s --max-time 2 "http://127.0.0.1:$1/") == "$2"* ]] && return 0
        sleep 0.2
    done
    return 1
}
check "HUP reloads the new code" serves "$PORT" "v2-reloaded flask "
check "the master still runs" kill -0 "$MASTER"

if [ "$SDIST" = 1 ]; then
    kill -TERM "$MASTER"
    printf '\n==> Another fresh virtualenv: pip install the source distribution\n'
    SDIST_VENV=$WORK/sdist-venv
    "$PYTHON" -m venv "$SDIST_VENV"
    check "pip install of the source distribution builds rwsgi" \
        "$SDIST_VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT"/target/wheels/rwsgi-*.tar.gz flask
    check "it installs rwsgi and rwsgi-server" test -x "$SDIST_VENV/bin/rwsgi" -a -x "$SDIST_VENV/bin/rwsgi-server"
    (cd "$WORK/app" && "$SDIST_VENV/bin/rwsgi" -w 1 -b "127.0.0.1:$((PORT + 1))" --pid "$WORK/sdist.pid" \
        app:app >"$WORK/sdist.log" 2>&1 &)
    check "the source-built rwsgi serves a request with its virtualenv's Flask" \
        serves "$((PORT + 1))" "v2-reloaded flask $SDIST_VENV/"
    MASTER=$(cat "$WORK/sdist.pid" 2>/dev/null || true)
fi

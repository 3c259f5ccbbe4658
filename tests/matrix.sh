#!/usr/bin/env bash
# The CPython matrix: the whole test suite (tests/run.sh: cargo build, cargo
# test, tests/integration) once per Debian release, inside a Debian root of
# that release (tests/debian-root.sh), so that rwsgi is built against, links
# and embeds that release's own CPython. The host's run (tests/run.sh) is the
# Debian 12 / CPython 3.11 row.
#
#   bash tests/matrix.sh                  every row: trixie (3.13), then sid (3.14)
#   bash tests/matrix.sh trixie           one row
#
# Needs root (tests/debian-root.sh: debootstrap, chroot, mount) and Debian's
# archive and PyPI; the first run of a row makes its root (cached in
# target/roots/SUITE) and the test virtualenv inside it (/opt/rwsgi-test-venv
# in the root, kept with it, apart from the host's .venv). Each row builds
# into target/matrix/SUITE (CARGO_TARGET_DIR) and runs with
# RWSGI_SKIP_PACKAGING=1 and RWSGI_SKIP_MATRIX=1: the multi-host and
# packaging tests run on the host only. A row's output goes to the terminal
# and to target/matrix/SUITE.log.
#
# Each row is bounded by RWSGI_MATRIX_TIMEOUT seconds (default 2400); a row
# that runs out of time fails. At the end one line per row gives the suite,
# the exact CPython version, PASS or FAIL and the seconds it took; the script
# exits 1 if any row failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD

SUITES=("$@")
((${#SUITES[@]})) || SUITES=(trixie sid)
for suite in "${SUITES[@]}"; do
    case $suite in
        trixie | sid | bookworm) ;;
        *) echo "matrix.sh: unknown suite $suite (trixie, sid or bookworm)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "matrix.sh: run as root (tests/debian-root.sh needs it)" >&2; exit 2; }
ROW_TIMEOUT=${RWSGI_MATRIX_TIMEOUT:-2400}

# What runs inside the root, in /src: it records the root's CPython version
# for the summary, then runs the test command.
# shellcheck disable=SC2016
ROW_SCRIPT='
set -euo pipefail
mkdir -p "$CARGO_TARGET_DIR"
python3 -c "import platform; print(platform.python_version())" > "$CARGO_TARGET_DIR/python-version"
exec bash tests/run.sh
'

summary=()
failed=0
for suite in "${SUITES[@]}"; do
    out=$REPO_ROOT/target/matrix/$suite
    mkdir -p "$out"
    rm -f "$out/python-version"
    printf '\n==> CPython matrix: %s (tests/run.sh in target/roots/%s, up to %ss)\n' "$suite" "$suite" "$ROW_TIMEOUT"
    start=$SECONDS
    status=0
    # timeout signals the whole process group (no --foreground); then
    # debian-root.sh's exit trap kills what is left in the root and unmounts.
    timeout --kill-after=60 "$ROW_TIMEOUT" \
        bash tests/debian-root.sh "$suite" /usr/bin/env \
        RWSGI_VENV=/opt/rwsgi-test-venv \
        CARGO_TARGET_DIR="/src/target/matrix/$suite" \
        RWSGI_SKIP_PACKAGING=1 RWSGI_SKIP_MATRIX=1 \
        bash -c "$ROW_SCRIPT" 2>&1 | tee "$out.log" || status=${PIPESTATUS[0]}
    seconds=$((SECONDS - start))
    version=$(cat "$out/python-version" 2>/dev/null || echo "?")
    result=PASS note=
    if [ "$status" -ne 0 ]; then
        result=FAIL failed=1 note=" (exit status $status)"
        # timeout's own statuses: TERM sent (124), then KILL (137).
        if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
            note=" (timed out after ${ROW_TIMEOUT}s)"
        fi
    fi
    summary+=("$(printf '%-8s CPython %-8s %s %5ss' "$suite" "$version" "$result" "$seconds")$note")
done

printf '\n==> CPython matrix summary\n'
for line in "${summary[@]}"; do
    echo "$line"
done
exit "$failed"

#!/usr/bin/env bash
# Install test for the rwsgi packages (slow: a few minutes, more the first
# time, when it makes the Debian root).
#
#   bash packaging/test.sh              build the packages, then test them
#   bash packaging/test.sh --no-build   test the packages already in target/packages/
#   bash packaging/test.sh --suite trixie [--no-build]
#                                       the same for the Debian 13 packages
#                                       (target/packages/trixie/), in a
#                                       clean trixie root
#
# Needs root (debootstrap, chroot, mounting /proc) and Debian's package
# archive (deb.debian.org, or DEBIAN_MIRROR). It:
#
#  1. builds both packages with packaging/build.sh (--suite trixie: in a
#     trixie root; lintian and rpmlint included), unless --no-build;
#  2. inspects them: dpkg-deb -c / -f, rpm -qpl / -qpR / --configfiles /
#     --scripts: binary, man page, units, init scripts, logrotate, config,
#     dependencies; no rpath; the man page renders without warnings;
#  3. makes a clean Debian bookworm (or trixie) root with debootstrap
#     (minbase plus curl, procps, systemd and logrotate; cached in
#     target/packaging-test/base, or target/packaging-test/trixie/base,
#     copied fresh for every run), installs the .deb with apt (which
#     resolves its dependencies from the archive) and, inside it:
#     - runs rwsgi --version and checks the example config;
#     - starts examples/get_started.py with /etc/init.d/rwsgi, curls it,
#       reloads it (new workers, the config change applied), rotates its
#       log with logrotate, stops it; a broken app makes `start` fail;
#     - runs the RPM's init script the same way (with a minimal stand-in
#       for Red Hat's /etc/rc.d/init.d/functions);
#     - verifies the systemd units with systemd-analyze verify;
#     - removes, then purges the package and checks what is left: the
#       rwsgi user and the administrator's own files, nothing else;
#  4. boots that root with systemd-nspawn and, under a running systemd
#     (packaging/test-systemd.sh): installs the .deb with dpkg, runs
#     rwsgi@hello.socket (socket activation) and rwsgi@tcp.service with the
#     packaged, hardened units: curl, reload, restart, USR1 as logrotate
#     sends it, the rwsgi.service umbrella, an app that cannot load (exit
#     status 4, not restarted); then purges the package and checks again.
#
# Servers listen on 127.0.0.1 only. Every check prints PASS or FAIL; the
# script exits 1 if any failed. The whole run is bounded by
# RWSGI_PKGTEST_TIMEOUT seconds (default 1800).
set -euo pipefail
# The many `bash -c '...' _ ARGS` checks quote their scripts on purpose.
# shellcheck disable=SC2016

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if [ -z "${RWSGI_PKGTEST_INNER:-}" ]; then
    export RWSGI_PKGTEST_INNER=1
    exec timeout --kill-after=30 "${RWSGI_PKGTEST_TIMEOUT:-1800}" bash "$0" "$@"
fi

BUILD=1
SUITE=bookworm
usage() { echo "usage: $0 [--suite bookworm|trixie] [--no-build]" >&2; exit 2; }
while (($#)); do
    case $1 in
        --no-build) BUILD=0; shift ;;
        --suite) (($# >= 2)) || usage; SUITE=$2; shift 2 ;;
        --suite=*) SUITE=${1#--suite=}; shift ;;
        *) usage ;;
    esac
done
# The Python each release's python3 is: the package must depend on its
# libpython. For bookworm, RWSGI_PACKAGE_PYTHON (build.sh builds against
# it) overrides.
case $SUITE in
    bookworm) SUITE_PYTHON=3.11 ;;
    trixie) SUITE_PYTHON=3.13 DEB_SUFFIX=+deb13 ;;
    *) usage ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root (debootstrap, chroot, mount)" >&2; exit 2; }

OUT=$ROOT/target/packages
WORK=${RWSGI_PKGTEST_DIR:-$ROOT/target/packaging-test}
BUILD_ARGS=()
if [ "$SUITE" != bookworm ]; then
    # Its packages and its own cached root, next to bookworm's.
    OUT=$OUT/$SUITE
    WORK=$WORK/$SUITE
    BUILD_ARGS=(--suite "$SUITE")
fi
BASE=$WORK/base
CHROOT=$WORK/root
APT_CACHE=$WORK/apt-archives
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

step() { printf '\n==> %s\n' "$*"; }

# --- Host tools (installed when missing; build.sh installs its own) ----------
tools=()
command -v debootstrap >/dev/null 2>&1 || tools+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || tools+=(systemd-container)
command -v man >/dev/null 2>&1 || tools+=(man-db)
command -v cpio >/dev/null 2>&1 || tools+=(cpio)
# Used on the built packages (build.sh installs them too; not with --no-build).
command -v rpm >/dev/null 2>&1 || tools+=(rpm)
command -v readelf >/dev/null 2>&1 || tools+=(binutils)
if ((${#tools[@]})); then
    step "Installing Debian packages: ${tools[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${tools[@]}"
fi

# --- Checks ------------------------------------------------------------------
PASSED=0
FAILED=0
FINISHED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf 'PASS  %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf 'FAIL  %s\n' "$1"; }
# check NAME COMMAND...: PASS when COMMAND succeeds (its output is shown
# only when it fails).
check() {
    local name=$1 output
    shift
    if output=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name"
        [ -z "$output" ] || printf '%s\n' "$output" | sed 's/^/      | /' | head -n 40
    fi
}
# check_show NAME COMMAND...: the same, showing COMMAND's output either way.
check_show() {
    local name=$1 output status=0
    shift
    output=$("$@" 2>&1) || status=$?
    if [ "$status" -eq 0 ]; then pass "$name"; else fail "$name"; fi
    [ -z "$output" ] || printf '%s\n' "$output" | sed 's/^/      | /' | head -n 40
    return 0
}
contains() { grep -qF -- "$2" <<<"$1" || { printf 'missing: %s\n' "$2"; return 1; }; }
lacks() { ! grep -qF -- "$2" <<<"$1" || { printf 'unexpected: %s\n' "$2"; return 1; }; }

summary() {
    printf '\n==> Summary: %d passed, %d failed\n' "$PASSED" "$FAILED"
    local f
    for f in "${FAILURES[@]}"; do
        printf '  FAIL  %s\n' "$f"
    done
    if [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; then
        echo "RESULT: PASS"
    else
        echo "RESULT: FAIL"
    fi
}

# --- Chroot helpers ----------------------------------------------------------
in_root() {
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME=/root DEBIAN_FRONTEND=noninteractive "$@"
}

# Kill what still runs inside the test root (processes this script
# started there), then unmount.
cleanup() {
    local status=$? proc pid
    trap - EXIT INT TERM
    if [ -d "$CHROOT" ]; then
        for proc in /proc/[0-9]*; do
            pid=${proc#/proc/}
            [ "$(readlink "$proc/root" 2>/dev/null)" = "$CHROOT" ] && kill -KILL "$pid" 2>/dev/null || true
        done
        for mnt in "$CHROOT/var/cache/apt/archives" "$CHROOT/proc"; do
            if mountpoint -q "$mnt" 2>/dev/null; then
                umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
            fi
        done
    fi
    # The same for the base root, when stopped while making it.
    if mountpoint -q "$BASE.tmp/proc" 2>/dev/null; then
        for proc in /proc/[0-9]*; do
            pid=${proc#/proc/}
            [ "$(readlink "$proc/root" 2>/dev/null)" = "$BASE.tmp" ] && kill -KILL "$pid" 2>/dev/null || true
        done
        umount "$BASE.tmp/proc" 2>/dev/null || umount -l "$BASE.tmp/proc" || true
    fi
    if [ "$FINISHED" -ne 1 ]; then
        FAILED=$((FAILED + 1))
        FAILURES+=("test.sh stopped early (exit status $status)")
    fi
    summary
    [ "$FAILED" -eq 0 ] || exit 1
    exit 0
}
trap cleanup EXIT
trap 'echo "test.sh: interrupted or timed out" >&2; exit 124' INT TERM

# A free port on 127.0.0.1 for the test servers.
pick_port() {
    local port
    for port in 18931 18941 18951 18961 18971 28931 28941; do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Wait until COMMAND succeeds, for at most SECONDS.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# ============================================================================
# 1. Build
# ============================================================================
if [ "$BUILD" -eq 1 ]; then
    step "Building the packages (packaging/build.sh ${BUILD_ARGS[*]})"
    if bash packaging/build.sh "${BUILD_ARGS[@]}"; then
        pass "build.sh builds both packages, lintian and rpmlint clean"
    else
        fail "build.sh builds both packages, lintian and rpmlint clean"
    fi
fi
shopt -s nullglob
debs=("$OUT"/rwsgi_*.deb)
rpms=("$OUT"/rwsgi-*.rpm)
shopt -u nullglob
if [ "${#debs[@]}" -ne 1 ] || [ "${#rpms[@]}" -ne 1 ]; then
    fail "exactly one .deb and one .rpm in $OUT"
    exit 1
fi
DEB=${debs[0]}
RPM=${rpms[0]}
if [ "$SUITE" = bookworm ] && [ -n "${RWSGI_PACKAGE_PYTHON:-}" ]; then
    PY_VERSION=$("$RWSGI_PACKAGE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
else
    PY_VERSION=$SUITE_PYTHON
fi
PY_SONAME=libpython$PY_VERSION.so.1.0

# ============================================================================
# 2. Inspect
# ============================================================================
step "Inspecting $(basename "$DEB")"
deb_files=$(dpkg-deb -c "$DEB" | awk '{print $NF}')
deb_check_files() {
    local f
    for f in ./usr/bin/rwsgi ./usr/share/man/man1/rwsgi.1.gz \
        ./usr/lib/systemd/system/rwsgi@.service ./usr/lib/systemd/system/rwsgi@.socket \
        ./usr/lib/systemd/system/rwsgi.service ./etc/init.d/rwsgi ./etc/default/rwsgi \
        ./etc/logrotate.d/rwsgi ./etc/rwsgi/example.toml ./usr/share/doc/rwsgi/copyright \
        ./usr/share/doc/rwsgi/changelog.Debian.gz ./usr/share/doc/rwsgi/examples/get_started.py \
        ./usr/share/lintian/overrides/rwsgi; do
        grep -qxF "$f" <<<"$deb_files" || { echo "missing $f"; return 1; }
    done
}
check "deb: dpkg-deb -c lists binary, man page, units, init script, defaults, logrotate, example config, docs" deb_check_files
deb_perms() {
    dpkg-deb -c "$DEB" | awk '$NF == "./usr/bin/rwsgi" || $NF == "./etc/init.d/rwsgi" {print $1}' | grep -vx -- '-rwxr-xr-x' && return 1
    dpkg-deb -c "$DEB" | awk '{print $2}' | grep -vxE 'root/root|0/0' && return 1
    return 0
}
check "deb: files owned by root, binary and init script 0755" deb_perms
deb_depends=$(dpkg-deb -f "$DEB" Depends)
check "deb: Depends on libpython$PY_VERSION (the Python of $SUITE it was built against): $deb_depends" \
    contains "$deb_depends" "libpython$PY_VERSION ("
check "deb: Depends on adduser, libc6, libgcc-s1" \
    bash -c 'for d in adduser libc6 libgcc-s1; do grep -qE "(^|, )$d( |,|$)" <<<"$1" || { echo "no $d"; exit 1; }; done' _ "$deb_depends"
if [ "$SUITE" != bookworm ]; then
    deb_version=$(dpkg-deb -f "$DEB" Version)
    check "deb: Version $deb_version ends with $DEB_SUFFIX, after the bookworm build's ${deb_version%"$DEB_SUFFIX"}" \
        bash -c '[[ $1 == *"$2" ]] && dpkg --compare-versions "$1" gt "${1%"$2"}"' _ "$deb_version" "$DEB_SUFFIX"
    rpm_release=$(rpm -qp --qf '%{RELEASE}' "$RPM" 2>/dev/null)
    check "rpm: Release $rpm_release names its libpython (py${PY_VERSION/./})" \
        test "$rpm_release" = "1.py${PY_VERSION/./}"
fi
check "deb: Pre-Depends on init-system-helpers" contains "$(dpkg-deb -f "$DEB" Pre-Depends)" "init-system-helpers"
deb_conffiles=$(dpkg-deb -I "$DEB" conffiles)
deb_check_conffiles() {
    local f
    for f in /etc/rwsgi/example.toml /etc/init.d/rwsgi /etc/default/rwsgi /etc/logrotate.d/rwsgi; do
        grep -qxF "$f" <<<"$deb_conffiles" || { echo "not a conffile: $f"; return 1; }
    done
}
check "deb: /etc files are conffiles" deb_check_conffiles

EXTRACT=$WORK/extract
rm -rf "$EXTRACT"
mkdir -p "$EXTRACT/deb" "$EXTRACT/rpm"
dpkg-deb -x "$DEB" "$EXTRACT/deb"
no_rpath() { ! readelf -d "$1" | grep -E '\((RPATH|RUNPATH)\)'; }
check "deb: /usr/bin/rwsgi has no rpath or runpath" no_rpath "$EXTRACT/deb/usr/bin/rwsgi"
check "deb: /usr/bin/rwsgi links $PY_SONAME" bash -c 'readelf -d "$1" | grep -qF "[$2]"' _ "$EXTRACT/deb/usr/bin/rwsgi" "$PY_SONAME"
man_clean() {
    local warnings
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null)
    [ -z "$warnings" ] || { printf '%s\n' "$warnings"; return 1; }
}
check "deb: man page renders without warnings (man --warnings -l)" man_clean "$EXTRACT/deb/usr/share/man/man1/rwsgi.1.gz"
check "deb: man page has SIGNALS, FILES, ENVIRONMENT, EXAMPLES with systemd" bash -c \
    'page=$(zcat "$1"); for s in ".SH SIGNALS" ".SH FILES" ".SH ENVIRONMENT" ".SH EXAMPLES" "rwsgi@myapp.socket" "Type=notify" "/etc/rwsgi/example.toml" "/var/log/rwsgi/"; do grep -qF -- "$s" <<<"$page" || { echo "missing $s"; exit 1; }; done' \
    _ "$EXTRACT/deb/usr/share/man/man1/rwsgi.1.gz"

step "Inspecting $(basename "$RPM")"
rpm_files=$(rpm -qpl "$RPM" 2>/dev/null)
rpm_check_files() {
    local f
    for f in /usr/bin/rwsgi /usr/share/man/man1/rwsgi.1.gz \
        /usr/lib/systemd/system/rwsgi@.service /usr/lib/systemd/system/rwsgi@.socket \
        /usr/lib/systemd/system/rwsgi.service /etc/rc.d/init.d/rwsgi /etc/sysconfig/rwsgi \
        /etc/logrotate.d/rwsgi /etc/rwsgi/example.toml /usr/share/licenses/rwsgi/copyright \
        /usr/share/doc/rwsgi/examples/get_started.py; do
        grep -qxF "$f" <<<"$rpm_files" || { echo "missing $f"; return 1; }
    done
}
check "rpm: rpm -qpl lists binary, man page, units, init script, sysconfig, logrotate, example config, docs" rpm_check_files
rpm_requires=$(rpm -qpR "$RPM" 2>/dev/null)
check "rpm: Requires $PY_SONAME()(64bit) (the Python it was built against)" contains "$rpm_requires" "$PY_SONAME()(64bit)"
check "rpm: Requires logrotate and /bin/sh" bash -c 'grep -qx logrotate <<<"$1" && grep -qx /bin/sh <<<"$1"' _ "$rpm_requires"
rpm_config=$(rpm -qp --configfiles "$RPM" 2>/dev/null)
check "rpm: example.toml, sysconfig and logrotate are %config" bash -c \
    'for f in /etc/rwsgi/example.toml /etc/sysconfig/rwsgi /etc/logrotate.d/rwsgi; do grep -qxF "$f" <<<"$1" || { echo "not config: $f"; exit 1; }; done' _ "$rpm_config"
rpm_scripts=$(rpm -qp --scripts "$RPM" 2>/dev/null)
check "rpm: scriptlets create the user, register init script and units" bash -c \
    'for s in "useradd -r" "chkconfig --add rwsgi" "chkconfig --del rwsgi" "preset rwsgi.service" "try-restart"; do grep -qF -- "$s" <<<"$1" || { echo "missing $s"; exit 1; }; done' _ "$rpm_scripts"
# Debian's rpm2cpio exits 1 after writing a zstd payload in full; cpio's
# status and the files tell.
(cd "$EXTRACT/rpm" && { rpm2cpio "$RPM" || true; } | cpio -idm --quiet)
check "rpm: payload extracts (rpm2cpio | cpio)" test -x "$EXTRACT/rpm/usr/bin/rwsgi"
check "rpm: /usr/bin/rwsgi has no rpath or runpath" no_rpath "$EXTRACT/rpm/usr/bin/rwsgi"
check "rpm: packaged units are the deb's" bash -c \
    'for u in rwsgi.service rwsgi@.service rwsgi@.socket; do cmp "$1/usr/lib/systemd/system/$u" "$2/usr/lib/systemd/system/$u" || exit 1; done' \
    _ "$EXTRACT/deb" "$EXTRACT/rpm"

# ============================================================================
# 3. A clean Debian root
# ============================================================================
if [ ! -e "$BASE/.complete" ]; then
    step "debootstrap $SUITE into $BASE (once; cached)"
    rm -rf "$BASE" "$BASE.tmp"
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$BASE.tmp" "$MIRROR"
    # apt's package lists, for installing the .deb's dependencies.
    cp /etc/resolv.conf "$BASE.tmp/etc/resolv.conf"
    timeout 600 chroot "$BASE.tmp" apt-get update -qq
    # With apt rather than debootstrap --include, which unpacks trixie's
    # systemd before configuring libsystemd-shared, its pre-dependency.
    # systemd's maintainer scripts want /proc.
    mount -t proc proc "$BASE.tmp/proc"
    status=0
    timeout 1200 chroot "$BASE.tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends curl procps systemd logrotate >/dev/null || status=$?
    umount "$BASE.tmp/proc"
    [ "$status" -eq 0 ] || { fail "apt-get install curl procps systemd logrotate in the $SUITE root"; exit 1; }
    chroot "$BASE.tmp" apt-get clean
    touch "$BASE.tmp/.complete"
    mv "$BASE.tmp" "$BASE"
fi

step "Fresh copy of the Debian root in $CHROOT"
rm -rf "$CHROOT"
cp -a "$BASE" "$CHROOT"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
mount -t proc proc "$CHROOT/proc"
mkdir -p "$APT_CACHE/partial"
mount --bind "$APT_CACHE" "$CHROOT/var/cache/apt/archives"
cp "$DEB" "$CHROOT/tmp/"
DEB_IN_ROOT=/tmp/$(basename "$DEB")

step "apt-get install $DEB_IN_ROOT"
install_deb() {
    timeout 600 chroot "$CHROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$DEB_IN_ROOT"
}
installed=0
if install_deb; then
    installed=1
else
    echo "(refreshing the package lists and trying again)"
    timeout 600 chroot "$CHROOT" apt-get update -qq || true
    install_deb && installed=1
fi
if [ "$installed" -eq 1 ]; then
    pass "apt-get install of the .deb resolves its dependencies from the archive"
else
    fail "apt-get install of the .deb resolves its dependencies from the archive"
    exit 1
fi
check "dpkg status of rwsgi is installed" bash -c '[ "$(chroot "$1" dpkg-query -W -f "\${db:Status-Status}" rwsgi)" = installed ]' _ "$CHROOT"
check "libpython$PY_VERSION came from the archive as a dependency" in_root dpkg-query -W "libpython$PY_VERSION"
check "ldd /usr/bin/rwsgi: every library found, libpython from /usr/lib" bash -c \
    'out=$(chroot "$1" ldd /usr/bin/rwsgi) && ! grep -q "not found" <<<"$out" && grep -qE "$2 => /usr/lib/|$2 => /lib/" <<<"$out" || { echo "$out"; exit 1; }' \
    _ "$CHROOT" "$PY_SONAME"

version=$(in_root rwsgi --version 2>&1 || true)
check "rwsgi --version: $version" bash -c '[[ $1 == "rwsgi $2" ]]' _ "$version" "$(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')"
check "rwsgi reads the installed example config" in_root rwsgi --config /etc/rwsgi/example.toml --print-config

check "postinst: system user rwsgi (uid < 1000, no login shell, group rwsgi)" bash -c \
    'IFS=: read -r name _ uid gid _ home shell <<<"$(chroot "$1" getent passwd rwsgi)" &&
     [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] && [ "$(chroot "$1" getent group "$gid" | cut -d: -f1)" = rwsgi ]' _ "$CHROOT"
check "postinst: /var/log/rwsgi is rwsgi:adm 2750" bash -c '[ "$(chroot "$1" stat -c "%U:%G %a" /var/log/rwsgi)" = "rwsgi:adm 2750" ]' _ "$CHROOT"
check "postinst: update-rc.d links the SysV script (S in 2345, K in 016)" bash -c \
    'for l in rc2.d/S rc3.d/S rc4.d/S rc5.d/S rc0.d/K rc1.d/K rc6.d/K; do ls "$1"/etc/${l%/*}/${l#*/}[0-9][0-9]rwsgi >/dev/null 2>&1 || { echo "no /etc/$l??rwsgi"; exit 1; }; done' _ "$CHROOT"
check "postinst: deb-systemd-helper enabled rwsgi.service" test -L "$CHROOT/etc/systemd/system/multi-user.target.wants/rwsgi.service"

# ============================================================================
# 4. SysV init: start, curl, reload, rotate, stop
# ============================================================================
PORT=$(pick_port) || { fail "a free port on 127.0.0.1"; exit 1; }
step "SysV init script (Debian): get_started:hello_world on 127.0.0.1:$PORT"
mkdir -p "$CHROOT/srv/hello"
cp examples/get_started.py "$CHROOT/srv/hello/"
cat > "$CHROOT/etc/rwsgi/hello.toml" <<EOF
wsgi_app = "get_started:hello_world"
chdir = "/srv/hello"
bind = ["127.0.0.1:$PORT"]
workers = 2
graceful_timeout = 5
EOF
sed -i 's/^INSTANCES=.*/INSTANCES="hello"/' "$CHROOT/etc/default/rwsgi"

master_pid() { cat "$CHROOT/run/rwsgi/$1.pid" 2>/dev/null; }
# The master's workers (its other children: the zygote they are forked
# from, the hook process).
workers_of() { in_root pgrep -P "$1" -f '^rwsgi: worker' | sort -n | tr '\n' ' '; }
children_of() { in_root pgrep -P "$1" | sort -n | tr '\n' ' '; }
worker_count() { workers_of "$1" | wc -w; }
# Processes of the test root's rwsgi user (the host's /proc is mounted in the
# root, so pgrep there would also see host processes with the same uid).
rwsgi_procs() {
    local uid proc
    uid=$(chroot "$CHROOT" id -u rwsgi 2>/dev/null) || return 0
    for proc in /proc/[0-9]*; do
        [ "$(readlink "$proc/root" 2>/dev/null)" = "$CHROOT" ] || continue
        [ "$(stat -c %u "$proc" 2>/dev/null)" = "$uid" ] && echo "${proc#/proc/}"
    done
    return 0
}
no_rwsgi_procs() { local p; p=$(rwsgi_procs); [ -z "$p" ] || { echo "still running: $p"; return 1; }; }
curl_hello() { [ "$(in_root curl -sS --max-time 5 "http://127.0.0.1:$PORT/")" = "Hello world!" ]; }
port_closed() { ! in_root curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/"; }

check_show "/etc/init.d/rwsgi start" in_root /etc/init.d/rwsgi start
check_show "status says running" in_root /etc/init.d/rwsgi status
MASTER=$(master_pid hello || true)
check "pidfile /run/rwsgi/hello.pid names a running master" bash -c '[ -n "$1" ] && kill -0 "$1"' _ "$MASTER"
check "the master runs as rwsgi" bash -c '[ "$(stat -c %u "/proc/$1")" = "$(chroot "$2" id -u rwsgi)" ]' _ "$MASTER" "$CHROOT"
check "two workers booted" wait_for 30 bash -c '[ "$(chroot "$1" pgrep -c -P "$2" -f "^rwsgi: worker")" = 2 ]' _ "$CHROOT" "$MASTER"
check "curl http://127.0.0.1:$PORT/ says Hello world!" wait_for 30 curl_hello
check "error log /var/log/rwsgi/hello.log records the start" grep -q "Listening at: http://127.0.0.1:$PORT" "$CHROOT/var/log/rwsgi/hello.log"

OLD_WORKERS=$(workers_of "$MASTER")
sed -i 's/^workers = 2/workers = 3/' "$CHROOT/etc/rwsgi/hello.toml"
check_show "/etc/init.d/rwsgi reload (HUP)" in_root /etc/init.d/rwsgi reload
# workers_replaced N: MASTER has N workers, none of them in OLD_WORKERS.
workers_replaced() {
    local now w
    now=$(workers_of "$MASTER")
    [ "$(worker_count "$MASTER")" = "$1" ] || return 1
    for w in $OLD_WORKERS; do
        case " $now " in *" $w "*) return 1 ;; esac
    done
}
check "reload: three new workers (config re-read), none of the old ones [$OLD_WORKERS]" wait_for 40 workers_replaced 3
echo "      workers now: $(workers_of "$MASTER")"
check "reload: same master" bash -c '[ "$(cat "$1/run/rwsgi/hello.pid")" = "$2" ] && kill -0 "$2"' _ "$CHROOT" "$MASTER"
check "curl after reload" curl_hello

# logrotate itself (the package only suggests it), forced: it renames
# hello.log to hello.log.1 as user rwsgi, then its postrotate runs
# `/etc/init.d/rwsgi rotate` (USR1): master, zygote and workers reopen
# hello.log.
if ! in_root sh -c 'command -v logrotate' >/dev/null 2>&1; then
    timeout 300 chroot "$CHROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends logrotate >/dev/null 2>&1 || true
fi
check "logrotate -f /etc/logrotate.d/rwsgi" in_root logrotate -f -s /tmp/logrotate.status /etc/logrotate.d/rwsgi
logs_reopened() {
    local pid fds
    for pid in "$MASTER" $(children_of "$MASTER"); do
        fds=$(ls -l "/proc/$pid/fd" 2>/dev/null) || return 1
        # (seen from the host, the link names the path inside the root)
        grep -q '/var/log/rwsgi/hello\.log$' <<<"$fds" || return 1
        ! grep -q 'hello\.log\.1' <<<"$fds" || return 1
    done
}
check "logrotate: hello.log.1 kept, hello.log recreated (0640 rwsgi:adm)" bash -c \
    '[ -e "$1/var/log/rwsgi/hello.log.1" ] && [ "$(chroot "$1" stat -c "%U:%G %a" /var/log/rwsgi/hello.log)" = "rwsgi:adm 640" ]' _ "$CHROOT"
check "logrotate: postrotate made master and workers reopen hello.log (USR1)" wait_for 10 logs_reopened

check_show "/etc/init.d/rwsgi stop" in_root /etc/init.d/rwsgi stop
check "stop: master and workers gone" wait_for 10 no_rwsgi_procs
check "stop: pidfile removed" bash -c '[ ! -e "$1/run/rwsgi/hello.pid" ]' _ "$CHROOT"
check "stop: port $PORT closed" port_closed
check "status says stopped (exit 3)" bash -c 'chroot "$1" /etc/init.d/rwsgi status; [ $? = 3 ]' _ "$CHROOT"

cat > "$CHROOT/etc/rwsgi/broken.toml" <<EOF
wsgi_app = "no_such_module:app"
bind = ["127.0.0.1:$PORT"]
EOF
check "start of an app that cannot be imported fails" bash -c '! chroot "$1" /etc/init.d/rwsgi start broken' _ "$CHROOT"
check "...and leaves nothing running" wait_for 10 no_rwsgi_procs
rm -f "$CHROOT/etc/rwsgi/broken.toml"

# ============================================================================
# 5. The RPM's SysV script, in the same root
# ============================================================================
step "SysV init script (RPM, chkconfig) with a stand-in for /etc/rc.d/init.d/functions"
mkdir -p "$CHROOT/etc/rc.d/init.d" "$CHROOT/etc/sysconfig"
in_root mkdir -p /var/lock/subsys   # /var/lock is a symlink to /run/lock
cp "$EXTRACT/rpm/etc/rc.d/init.d/rwsgi" "$CHROOT/etc/rc.d/init.d/rwsgi"
cp "$EXTRACT/rpm/etc/sysconfig/rwsgi" "$CHROOT/etc/sysconfig/rwsgi"
sed -i 's/^INSTANCES=.*/INSTANCES="hello"/' "$CHROOT/etc/sysconfig/rwsgi"
# Red Hat's `action MESSAGE COMMAND...`: run COMMAND, print [ OK ] or [FAILED].
cat > "$CHROOT/etc/rc.d/init.d/functions" <<'EOF'
action() {
    local message=$1 rc
    shift
    echo -n "$message "
    "$@"
    rc=$?
    if [ "$rc" = 0 ]; then echo "[  OK  ]"; else echo "[FAILED]"; fi
    return "$rc"
}
EOF
check "rpm script: chkconfig header" grep -Eq '^# chkconfig: +- 85 15$' "$CHROOT/etc/rc.d/init.d/rwsgi"
check_show "rpm script: start" in_root /etc/rc.d/init.d/rwsgi start
check "rpm script: lock file /var/lock/subsys/rwsgi" in_root test -e /var/lock/subsys/rwsgi
check_show "rpm script: status" in_root /etc/rc.d/init.d/rwsgi status
MASTER=$(master_pid hello || true)
check "rpm script: curl" wait_for 30 curl_hello
OLD_WORKERS=$(workers_of "$MASTER")
sed -i 's/^workers = 3/workers = 2/' "$CHROOT/etc/rwsgi/hello.toml"
check_show "rpm script: reload" in_root /etc/rc.d/init.d/rwsgi reload
check "rpm script: reload replaced the workers" wait_for 40 workers_replaced 2
check_show "rpm script: stop" in_root /etc/rc.d/init.d/rwsgi stop
check "rpm script: master gone, port closed" bash -c '! kill -0 "$1" 2>/dev/null && ! chroot "$2" curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$3/"' _ "$MASTER" "$CHROOT" "$PORT"
check "rpm script: status says stopped (exit 3)" bash -c 'chroot "$1" /etc/rc.d/init.d/rwsgi status; [ $? = 3 ]' _ "$CHROOT"
check "rpm script: stop removed the lock file" in_root test ! -e /var/lock/subsys/rwsgi
rm -rf "$CHROOT/etc/rc.d" "$CHROOT/etc/sysconfig"

# ============================================================================
# 6. systemd units
# ============================================================================
step "systemd-analyze verify (systemd $(in_root systemd-analyze --version | awk 'NR == 1 {print $2}'), in the root)"
verify_units() {
    local out
    # Instances of the templates; the config file the units assert exists.
    out=$(in_root systemd-analyze verify --man=no \
        /usr/lib/systemd/system/rwsgi.service \
        /usr/lib/systemd/system/rwsgi@hello.service \
        /usr/lib/systemd/system/rwsgi@hello.socket 2>&1) || { printf '%s\n' "$out"; return 1; }
    # Any complaint about our units counts, even when the exit status is 0.
    if grep -i 'rwsgi' <<<"$out"; then return 1; fi
    [ -z "$out" ] || printf '(other output)\n%s\n' "$out"
}
check "systemd-analyze verify rwsgi.service rwsgi@hello.service rwsgi@hello.socket" verify_units
check "systemctl enable rwsgi@hello.socket rwsgi@hello.service (offline)" in_root systemctl enable rwsgi@hello.socket rwsgi@hello.service
check "...wants links to the templates" bash -c \
    'test -L "$1/etc/systemd/system/multi-user.target.wants/rwsgi@hello.service" && test -L "$1/etc/systemd/system/sockets.target.wants/rwsgi@hello.socket"' _ "$CHROOT"

# ============================================================================
# 7. Remove, then purge
# ============================================================================
step "apt-get remove rwsgi"
check "apt-get remove" in_root apt-get remove -y -q rwsgi
check "remove: binary, units and init script gone" bash -c \
    'for f in usr/bin/rwsgi usr/lib/systemd/system/rwsgi@.service usr/share/man/man1/rwsgi.1.gz; do [ ! -e "$1/$f" ] || { echo "left: /$f"; exit 1; }; done' _ "$CHROOT"
check "remove: conffiles kept (status config-files)" bash -c \
    '[ "$(chroot "$1" dpkg-query -W -f "\${db:Status-Status}" rwsgi)" = config-files ] && [ -e "$1/etc/rwsgi/example.toml" ] && [ -e "$1/etc/default/rwsgi" ] && [ -e "$1/etc/init.d/rwsgi" ]' _ "$CHROOT"
check "remove: logs kept" test -d "$CHROOT/var/log/rwsgi"

step "apt-get purge rwsgi"
check "apt-get purge" in_root apt-get purge -y -q rwsgi
check "purge: package unknown to dpkg" bash -c '! chroot "$1" dpkg-query -W -f "\${db:Status-Status}" rwsgi 2>/dev/null | grep -q .' _ "$CHROOT"
purge_leftovers() {
    local f
    for f in etc/rwsgi/example.toml etc/default/rwsgi etc/init.d/rwsgi etc/logrotate.d/rwsgi \
        var/log/rwsgi run/rwsgi usr/share/doc/rwsgi \
        etc/systemd/system/multi-user.target.wants/rwsgi.service \
        etc/systemd/system/multi-user.target.wants/rwsgi@hello.service \
        etc/systemd/system/sockets.target.wants/rwsgi@hello.socket \
        var/lib/systemd/deb-systemd-helper-enabled/rwsgi.service.dsh-also \
        var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/rwsgi.service; do
        [ ! -e "$CHROOT/$f" ] && [ ! -L "$CHROOT/$f" ] || { echo "left: /$f"; return 1; }
    done
    f=$(cd "$CHROOT/etc" && ls rc?.d/*rwsgi 2>/dev/null || true)
    [ -z "$f" ] || { echo "left: $f"; return 1; }
}
check "purge: conffiles, logs, runtime files, rc links, unit symlinks all gone" purge_leftovers
check "purge: the rwsgi user and group stay (policy: files may still belong to them)" \
    bash -c 'chroot "$1" getent passwd rwsgi && chroot "$1" getent group rwsgi' _ "$CHROOT"
check "purge: the administrator's own /etc/rwsgi/hello.toml stays" test -e "$CHROOT/etc/rwsgi/hello.toml"
leftover_paths() {
    # Every path in the root that mentions rwsgi, besides the expected ones.
    (cd "$CHROOT" && find . -xdev -path ./proc -prune -o -path ./tmp -prune -o -path ./var/cache/apt -prune \
        -o -name '*rwsgi*' -print) | grep -vxE '\./etc/rwsgi(/hello\.toml)?' || true
}
check "purge: nothing else named rwsgi left in the root" bash -c '[ -z "$1" ] || { echo "$1"; exit 1; }' _ "$(leftover_paths)"
check "purge: no rwsgi process left" no_rwsgi_procs

# ============================================================================
# 8. Under a running systemd: the root booted with systemd-nspawn
# ============================================================================
# The package is installed again, now with dpkg under a booted systemd, so
# the units run for real (hardening included) and the maintainer scripts
# take their systemd branches. Needs systemd-nspawn (systemd-container).
step "systemd: boot the root with systemd-nspawn"
for mnt in "$CHROOT/var/cache/apt/archives" "$CHROOT/proc"; do
    umount "$mnt"
done
cp "$DEB" "$CHROOT/root/rwsgi.deb"
echo "$PORT" > "$CHROOT/root/rwsgi-selftest.port"
printf '%s\n' 'wsgi_app = "get_started:hello_world"' 'chdir = "/srv/hello"' \
    "bind = [\"127.0.0.1:$PORT\"]" 'workers = 2' 'errorlog = "/var/log/rwsgi/tcp.log"' \
    > "$CHROOT/etc/rwsgi/tcp.toml"
printf '%s\n' 'wsgi_app = "no_such_module:app"' 'bind = ["unix:/run/rwsgi/broken.sock"]' > "$CHROOT/etc/rwsgi/broken.toml"
cp packaging/test-systemd.sh "$CHROOT/usr/local/sbin/rwsgi-selftest"
chmod 755 "$CHROOT/usr/local/sbin/rwsgi-selftest"
printf '%s\n' '[Unit]' 'Description=rwsgi package self-test' 'After=multi-user.target' \
    '[Service]' 'Type=oneshot' 'ExecStart=/usr/local/sbin/rwsgi-selftest' \
    > "$CHROOT/etc/systemd/system/rwsgi-selftest.service"
ln -sf /etc/systemd/system/rwsgi-selftest.service \
    "$CHROOT/etc/systemd/system/multi-user.target.wants/rwsgi-selftest.service"
rm -f "$CHROOT/root/rwsgi-selftest.result"
# --keep-unit and --register=no: there is no systemd (or D-Bus) on the host.
timeout 300 systemd-nspawn --quiet --register=no --keep-unit --directory="$CHROOT" --boot \
    >"$WORK/nspawn.log" 2>&1 </dev/null || true
result=$CHROOT/root/rwsgi-selftest.result
if [ ! -s "$result" ]; then
    fail "systemd: the root boots under systemd-nspawn and runs the self-test (see $WORK/nspawn.log)"
    tail -n 30 "$WORK/nspawn.log" | sed 's/^/      | /'
else
    while read -r verdict name; do
        case $verdict in
            PASS) pass "systemd: $name" ;;
            FAIL) fail "systemd: $name" ;;
        esac
    done < "$result"
    grep -qx DONE "$result" || fail "systemd: the self-test ran to the end"
    if grep -q '^FAIL' "$result" || ! grep -qx DONE "$result"; then
        echo "      (log: $CHROOT/root/rwsgi-selftest.log)"
        tail -n 40 "$CHROOT/root/rwsgi-selftest.log" | sed 's/^/      | /'
    fi
fi
rm -f "$CHROOT/etc/systemd/system/multi-user.target.wants/rwsgi-selftest.service" \
    "$CHROOT/etc/systemd/system/rwsgi-selftest.service" "$CHROOT/usr/local/sbin/rwsgi-selftest" \
    "$CHROOT/etc/rwsgi/tcp.toml" "$CHROOT/etc/rwsgi/broken.toml" "$CHROOT/root/rwsgi.deb"
check "systemd: after purge, conffiles, logs, rc links and unit symlinks are gone" purge_leftovers
check "systemd: after purge, the rwsgi user stays" chroot "$CHROOT" getent passwd rwsgi

FINISHED=1

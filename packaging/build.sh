#!/usr/bin/env bash
# Build the rwsgi Debian and RPM packages into target/packages/, then check
# them with lintian and rpmlint.
#
#   bash packaging/build.sh                  on this host (Debian 12, bookworm)
#   bash packaging/build.sh --suite trixie   for Debian 13 (trixie), in a
#                                            trixie root (tests/debian-root.sh)
#
# From a clean clone on Debian (bookworm) as root, or with sudo available:
# installs what is missing (dpkg-dev, lintian, rpm, rpmlint, the system
# Python's libpython development files; cargo-deb and cargo-generate-rpm
# from crates.io), builds rwsgi against the system Python (/usr/bin/python3,
# never a pyenv or virtualenv one) into its own target directory, and
# writes:
#
#   target/packages/rwsgi_VERSION-1_ARCH.deb
#   target/packages/rwsgi-VERSION-1.ARCH.rpm
#
# With --suite trixie it builds against Debian 13's /usr/bin/python3
# (CPython 3.13) inside a debootstrapped trixie root (made once and cached
# in target/roots/trixie, or target/roots/$RWSGI_ROOT_NAME; needs root), with
# trixie's own dpkg-shlibdeps and lintian, and writes
#
#   target/packages/trixie/rwsgi_VERSION-1+deb13_ARCH.deb
#   target/packages/trixie/rwsgi-VERSION-1.py313.ARCH.rpm
#
# The Debian revision carries +deb13, so the two builds have different
# names and an upgrade to Debian 13 replaces the bookworm build (1 sorts
# before 1+deb13); the RPM's release names the libpython it needs. cargo-deb
# and cargo-generate-rpm are the host's (installed in ~/.cargo/bin first
# when missing; a copy built in the root would need trixie's glibc).
# --suite bookworm on a bookworm host is the same as no option.
#
# It fails when lintian reports an error or a warning that is not
# overridden (packaging/debian/rwsgi.lintian-overrides, each with its
# reason), or rpmlint an error or an unfiltered warning
# (packaging/rpm/rpmlint.toml).
#
# Environment:
#   RWSGI_PACKAGE_PYTHON   interpreter to build against (/usr/bin/python3;
#                          host builds only)
#   CARGO_TARGET_DIR       cargo's target directory (target/package, so the
#                          development build in target/ is left alone;
#                          host builds only: --suite trixie always uses
#                          target/package-trixie)
#   JOBS                   cargo build jobs (2)
#   LINT_STRICT=0          print the lint results but do not fail on them
#   RWSGI_ROOT_NAME        the root to build in (--suite trixie): target/roots/NAME
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 [--suite bookworm|trixie]" >&2; exit 2; }

SUITE=
while (($#)); do
    case $1 in
        --suite) (($# >= 2)) || usage; SUITE=$2; shift 2 ;;
        --suite=*) SUITE=${1#--suite=}; shift ;;
        *) usage ;;
    esac
done
case $SUITE in
    "" | bookworm | trixie) ;;
    *) die "unknown suite $SUITE (bookworm or trixie)" ;;
esac

JOBS=${JOBS:-2}
LINT_STRICT=${LINT_STRICT:-1}

# Reproducible timestamps: the last commit's date.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# --- Another release: build inside a root of it ------------------------------
# (tests/debian-root.sh sets RWSGI_DEBIAN_ROOT to the root's suite.)
# shellcheck source=/dev/null
HOST_CODENAME=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -n "$SUITE" ] && [ "$SUITE" != "$HOST_CODENAME" ] && [ "${RWSGI_DEBIAN_ROOT:-}" != "$SUITE" ]; then
    [ "$(id -u)" -eq 0 ] || die "--suite $SUITE builds in a Debian root: run as root (debootstrap, chroot, mount)"
    # The root sees the host's ~/.cargo: the tools must be built here, for
    # the older glibc, to run on both.
    if ! cargo deb --version >/dev/null 2>&1; then
        step "Installing cargo-deb (on the host)"
        cargo install --locked cargo-deb
    fi
    if ! cargo generate-rpm --version >/dev/null 2>&1; then
        step "Installing cargo-generate-rpm (on the host)"
        cargo install --locked cargo-generate-rpm
    fi
    step "Building in a Debian $SUITE root (tests/debian-root.sh $SUITE)"
    exec bash tests/debian-root.sh "$SUITE" env JOBS="$JOBS" LINT_STRICT="$LINT_STRICT" \
        SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" bash packaging/build.sh --suite "$SUITE"
fi

# --- Where, and the names of this release's packages -------------------------
# bookworm (and no --suite): target/packages/, Debian revision 1, RPM release
# 1, as the Cargo.toml metadata says. Another release: its own directory,
# and names that tell the builds apart.
DEB_REVISION=
RPM_RELEASE=
case $SUITE in
    "" | bookworm)
        OUT=$ROOT/target/packages
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/package}
        PYTHON=${RWSGI_PACKAGE_PYTHON:-/usr/bin/python3}
        ;;
    *)
        OUT=$ROOT/target/packages/$SUITE
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/package-$SUITE}
        PYTHON=/usr/bin/python3
        # shellcheck source=/dev/null
        SUITE_VERSION=$(. /etc/os-release && echo "$VERSION_ID")
        DEB_REVISION=1+deb$SUITE_VERSION
        ;;
esac
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR=$ROOT/$CARGO_TARGET_DIR ;; esac
# Cargo.toml's package metadata names the generated files here; their
# content is the same for every release.
STAGE=$ROOT/target/packages/stage

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
APT_OPTS=()
# In a shared root another apt may be at work: wait for its lock.
[ -z "${RWSGI_DEBIAN_ROOT:-}" ] || APT_OPTS=(-o DPkg::Lock::Timeout=600)

# --- Tools -------------------------------------------------------------------
if [ ! -x "$PYTHON" ] && [ "$PYTHON" = /usr/bin/python3 ]; then
    step "Installing Debian packages: python3 (the packages are built against it)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends python3
fi
[ -x "$PYTHON" ] || die "$PYTHON not found: the packages are built against the system Python"
PY_LIBDIR=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
PY_LDLIBRARY=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LDLIBRARY"))')
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

missing=()
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v rpm >/dev/null 2>&1 || missing+=(rpm)
command -v rpmlint >/dev/null 2>&1 || missing+=(rpmlint)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
# The unversioned libpython3.X.so that the linker needs comes with -dev.
[ -e "$PY_LIBDIR/$PY_LDLIBRARY" ] || missing+=("libpython$PY_VERSION-dev")
if ((${#missing[@]})); then
    step "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi
CARGO_INSTALL=(cargo install --locked)
if [ -n "${RWSGI_DEBIAN_ROOT:-}" ]; then
    # In a Debian root, ~/.cargo is the host's: a tool built here (for this
    # root's glibc) goes into the root's own /opt/rwsgi-cargo-tools instead.
    export PATH=/opt/rwsgi-cargo-tools/bin:$PATH
    CARGO_INSTALL+=(--root /opt/rwsgi-cargo-tools)
fi
if ! cargo deb --version >/dev/null 2>&1; then
    step "Installing cargo-deb"
    "${CARGO_INSTALL[@]}" cargo-deb
fi
if ! cargo generate-rpm --version >/dev/null 2>&1; then
    step "Installing cargo-generate-rpm"
    "${CARGO_INSTALL[@]}" cargo-generate-rpm
fi
[ -z "$SUITE" ] || [ "$SUITE" = bookworm ] || RPM_RELEASE=1.py${PY_VERSION/./}

# --- Build -------------------------------------------------------------------
step "cargo build --release against $PYTHON (Python $PY_VERSION) into $CARGO_TARGET_DIR"
# RWSGI_NO_RPATH: the system libpython is on the loader's default path, and
# Debian and RPM policy forbid an rpath to a system directory (build.rs).
PYO3_PYTHON=$PYTHON RWSGI_NO_RPATH=1 CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked -j "$JOBS" --bin rwsgi
BIN=$CARGO_TARGET_DIR/release/rwsgi

step "Checking the binary"
dynamic=$(readelf -d "$BIN")
if grep -Eq '\((RPATH|RUNPATH)\)' <<<"$dynamic"; then
    grep -E '\((RPATH|RUNPATH)\)' <<<"$dynamic" >&2
    die "$BIN has an rpath: build.rs did not honour RWSGI_NO_RPATH"
fi
soname=$(objdump -p "$PY_LIBDIR/$PY_LDLIBRARY" | awk '$1 == "SONAME" {print $2}')
grep -q "NEEDED.*\[$soname\]" <<<"$dynamic" || die "$BIN does not link $soname"
echo "links $soname from $PY_LIBDIR, no rpath"
"$BIN" --version

# --- Generated files ------------------------------------------------------------
step "Staging generated files in $STAGE"
mkdir -p "$STAGE"
# Each file is written aside, then renamed over the old one: a build for
# another release may be reading the stage at the same time.
# /etc/rwsgi/example.toml: how the packaged server uses /etc/rwsgi, then
# the annotated list of every setting (config/rwsgi.toml, generated from the
# settings table and checked by `cargo test`).
cat packaging/etc/rwsgi/example-header.toml config/rwsgi.toml > "$STAGE/.example.toml.$$"
gzip -9n < man/rwsgi.1 > "$STAGE/.rwsgi.1.gz.$$"
touch -d "@$SOURCE_DATE_EPOCH" "$STAGE/.example.toml.$$" "$STAGE/.rwsgi.1.gz.$$"
mv -f "$STAGE/.example.toml.$$" "$STAGE/example.toml"
mv -f "$STAGE/.rwsgi.1.gz.$$" "$STAGE/rwsgi.1.gz"

# --- Packages ---------------------------------------------------------------
mkdir -p "$OUT"
rm -f "$OUT"/*.deb "$OUT"/*.rpm

DEB_ARGS=()
[ -z "$DEB_REVISION" ] || DEB_ARGS=(--deb-revision "$DEB_REVISION")
RPM_ARGS=()
[ -z "$RPM_RELEASE" ] || RPM_ARGS=(--set-metadata "release = \"$RPM_RELEASE\"")

step "cargo deb ${DEB_ARGS[*]}"
cargo deb --no-build --locked "${DEB_ARGS[@]}" -o "$OUT/"
DEB=$(ls "$OUT"/*.deb)

step "cargo generate-rpm ${RPM_ARGS[*]}"
cargo generate-rpm --target-dir "$CARGO_TARGET_DIR" "${RPM_ARGS[@]}" -o "$OUT/"
RPM=$(ls "$OUT"/*.rpm)

# --- Lint --------------------------------------------------------------------
lint_failed=0

step "lintian $(basename "$DEB")"
# --show-overrides: list the overridden tags too (O:), each justified in
# packaging/debian/rwsgi.lintian-overrides.
set +e
lintian_out=$(lintian --display-info --show-overrides "$DEB" 2>&1)
status=$?
set -e
printf '%s\n' "$lintian_out"
# Fail on an error or warning (E:, W:); overridden ones are shown as O:.
if [ "$status" -ne 0 ] || grep -Eq '^[EW]: ' <<<"$lintian_out"; then
    echo "lintian: FAILED (exit $status)"
    lint_failed=1
else
    echo "lintian: no errors or warnings"
fi

step "rpmlint $(basename "$RPM")"
set +e
rpmlint_out=$(rpmlint --config packaging/rpm/rpmlint.toml "$RPM" 2>&1)
status=$?
set -e
printf '%s\n' "$rpmlint_out"
# rpmlint exits non-zero on errors only; warnings count too.
if [ "$status" -ne 0 ] || ! grep -Eq ' 0 errors, 0 warnings' <<<"$rpmlint_out"; then
    echo "rpmlint: FAILED (exit $status)"
    lint_failed=1
else
    echo "rpmlint: no errors or unfiltered warnings"
fi

step "Packages"
ls -l "$DEB" "$RPM"
printf '%s: installed size %s KiB\n' "$(basename "$DEB")" "$(dpkg-deb -f "$DEB" Installed-Size)"
printf '%s: installed size %s KiB\n' "$(basename "$RPM")" "$(( $(rpm -qp --qf '%{SIZE}' "$RPM" 2>/dev/null) / 1024 ))"
echo "Depends: $(dpkg-deb -f "$DEB" Depends)"
echo "Requires: $(rpm -qpR "$RPM" 2>/dev/null | tr '\n' ' ')"

if [ "$lint_failed" -ne 0 ] && [ "$LINT_STRICT" != 0 ]; then
    die "lint failed (LINT_STRICT=0 to build anyway)"
fi

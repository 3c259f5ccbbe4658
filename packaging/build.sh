#!/usr/bin/env bash
# Build the rwsgi Debian and RPM packages into target/packages/, then check
# them with lintian and rpmlint.
#
#   bash packaging/build.sh
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
# It fails when lintian reports an error or a warning that is not
# overridden (packaging/debian/rwsgi.lintian-overrides, each with its
# reason), or rpmlint an error or an unfiltered warning
# (packaging/rpm/rpmlint.toml).
#
# Environment:
#   RWSGI_PACKAGE_PYTHON   interpreter to build against (/usr/bin/python3)
#   CARGO_TARGET_DIR       cargo's target directory (target/package, so the
#                          development build in target/ is left alone)
#   JOBS                   cargo build jobs (2)
#   LINT_STRICT=0          print the lint results but do not fail on them
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/target/packages
STAGE=$OUT/stage
PYTHON=${RWSGI_PACKAGE_PYTHON:-/usr/bin/python3}
JOBS=${JOBS:-2}
LINT_STRICT=${LINT_STRICT:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/package}
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR=$ROOT/$CARGO_TARGET_DIR ;; esac

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

# --- Tools -------------------------------------------------------------------
if [ ! -x "$PYTHON" ] && [ "$PYTHON" = /usr/bin/python3 ]; then
    step "Installing Debian packages: python3 (the packages are built against it)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3
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
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! cargo deb --version >/dev/null 2>&1; then
    step "Installing cargo-deb"
    cargo install --locked cargo-deb
fi
if ! cargo generate-rpm --version >/dev/null 2>&1; then
    step "Installing cargo-generate-rpm"
    cargo install --locked cargo-generate-rpm
fi

# Reproducible timestamps: the last commit's date.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

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
rm -rf "$STAGE"
mkdir -p "$STAGE"
# /etc/rwsgi/example.toml: how the packaged server uses /etc/rwsgi, then
# the annotated list of every setting (config/rwsgi.toml, generated from the
# settings table and checked by `cargo test`).
cat packaging/etc/rwsgi/example-header.toml config/rwsgi.toml > "$STAGE/example.toml"
gzip -9n < man/rwsgi.1 > "$STAGE/rwsgi.1.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$STAGE"/*

# --- Packages ---------------------------------------------------------------
mkdir -p "$OUT"
rm -f "$OUT"/*.deb "$OUT"/*.rpm

step "cargo deb"
cargo deb --no-build --locked -o "$OUT/"
DEB=$(ls "$OUT"/*.deb)

step "cargo generate-rpm"
cargo generate-rpm --target-dir "$CARGO_TARGET_DIR" -o "$OUT/"
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

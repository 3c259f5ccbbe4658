#!/usr/bin/env bash
# Build the rwsgi wheel for one CPython, and the source distribution.
#
#   bash packaging/wheel/build.sh [PYTHON]      (default: python3 on PATH)
#
# Writes target/wheels/rwsgi-VERSION-cp3XX-cp3XX-manylinux_2_NN_x86_64.whl
# (for PYTHON's version) and target/wheels/rwsgi-VERSION.tar.gz. Needs Rust
# (cargo) and PYTHON with its shared libpython (`--enable-shared`: Debian's,
# pyenv's with PYTHON_CONFIGURE_OPTS=--enable-shared);
# maturin, pinned, is installed into a virtualenv of PYTHON under
# target/wheel-tools/. The cargo build goes to target/wheel/pyX.Y/ (release).
#
# The wheel holds two programs, installed into the virtualenv's bin/ by
# pip: `rwsgi-server`, the server, and `rwsgi`, a small launcher that finds
# the libpython of the virtualenv's interpreter and runs the server
# (packaging/wheel/src/launch.rs says how).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
PYTHON=${1:-python3}
MATURIN_VERSION=1.16.0

command -v "$PYTHON" >/dev/null 2>&1 || { echo "build.sh: no interpreter $PYTHON" >&2; exit 2; }
PYTHON=$(command -v "$PYTHON")
tag=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
shared=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')
[ "$shared" = 1 ] || { echo "build.sh: $PYTHON has no shared libpython (built without --enable-shared)" >&2; exit 2; }

TOOLS=$ROOT/target/wheel-tools/venv-$tag
if [ ! -x "$TOOLS/bin/maturin" ] || [ "$("$TOOLS/bin/maturin" --version)" != "maturin $MATURIN_VERSION" ]; then
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"
fi

export CARGO_TARGET_DIR=$ROOT/target/wheel/py$tag
export PYO3_PYTHON=$PYTHON
mkdir -p target/wheels
"$TOOLS/bin/maturin" build --release --manifest-path packaging/wheel/Cargo.toml \
    --interpreter "$PYTHON" --out target/wheels
"$TOOLS/bin/maturin" sdist --manifest-path packaging/wheel/Cargo.toml --out target/wheels

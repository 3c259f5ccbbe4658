//! Link against the `libpython` of the interpreter pyo3 found (`PYO3_PYTHON`,
//! else `python3` on PATH) and record its directory as an rpath, so the
//! binary starts on a machine where that library is not on the loader's
//! default path (pyenv, a custom prefix).
//!
//! `RWSGI_NO_RPATH=1` leaves the rpath out: distribution packages link the
//! system libpython, which the loader finds by itself, and Debian and RPM
//! policy forbid an rpath to a system directory (`packaging/build.sh`).
fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=RWSGI_NO_RPATH");
    if std::env::var_os("RWSGI_NO_RPATH").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    pyo3_build_config::add_libpython_rpath_link_args();
}

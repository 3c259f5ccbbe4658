//! Link against the `libpython` of the interpreter pyo3 found (`PYO3_PYTHON`,
//! else `python3` on PATH) and record its directory as an rpath, so the
//! binary starts on a machine where that library is not on the loader's
//! default path (pyenv, a custom prefix).
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}

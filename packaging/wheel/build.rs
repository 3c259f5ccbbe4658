//! The CPython version the wheel is built for (`PYO3_PYTHON`, else
//! `python3`), which the launcher needs to name its libpython.
fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let config = pyo3_build_config::get();
    println!("cargo:rustc-env=RWSGI_PYTHON_VERSION={}.{}", config.version().major, config.version().minor);
}

//! The hook process: the rwsgi binary started again by the master
//! (`rwsgi --rwsgi-hook-process TARGET VIRTUALENV PYTHONPATH`), with its
//! own CPython, to run the master-side hooks of the config file TARGET.
//! The master writes one JSON call per line to its standard input, a
//! socket, and reads one answer per line back; what the hooks print and
//! log goes to the error log, its standard output and error. It ends when
//! the master closes the socket, and ignores the signals meant for the
//! server (a terminal's Ctrl-C reaches the whole process group).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sys;

/// The first argument that runs the rwsgi binary as the hook process.
pub const FLAG: &str = "--rwsgi-hook-process";

/// Serve the master's hook calls; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let [target, venv, pythonpath] = args else {
        eprintln!("{FLAG}: expected TARGET VIRTUALENV PYTHONPATH");
        return 2;
    };
    let program = (!venv.is_empty()).then(|| std::path::Path::new(venv).join("bin").join("python"));
    if let Err(e) = sys::init_python(program.as_deref()) {
        eprintln!("{e}");
        return 1;
    }
    Python::attach(|py| {
        let served = (|| -> PyResult<()> {
            let scope = PyDict::new(py);
            py.run(&super::runtime_code(), Some(&scope), None)?;
            // The app's directories, as a worker has them, for hooks that
            // import the app's modules.
            let dirs: Vec<std::path::PathBuf> = pythonpath.split(',').filter(|d| !d.is_empty()).map(Into::into).collect();
            crate::wsgi::app_dirs_on_path(py, &dirs)?;
            let serve = scope.get_item("serve_master_hooks")?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("runtime incomplete"))?;
            serve.call1((0, target.as_str(), 2, super::MASTER_SIDE.to_vec())).map(drop)
        })();
        match served {
            Ok(()) => 0,
            Err(e) => {
                e.print(py);
                1
            }
        }
    })
}

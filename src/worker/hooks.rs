//! A worker's server hooks (post_fork, post_worker_init, worker_int,
//! worker_abort, pre_request, post_request, worker_exit), run in the
//! worker's own interpreter at Gunicorn's moments. The config file is
//! executed again here to find them (only when it defines any of them);
//! `runtime.py`'s `WorkerHooks` holds them and the objects they receive.

use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::WorkerSpec;
use crate::config::Config;
use crate::hooks::{self, ServerPicture, WorkerPicture};
use crate::wsgi;

/// The worker-side hooks of the config file, loaded.
pub(super) struct Hooks {
    /// `runtime.py`'s `WorkerHooks`.
    obj: Py<PyAny>,
    /// pre_request or post_request is defined.
    per_request: bool,
}

/// A Python log call of a hook (`worker.log.info(...)`), into rwsgi's
/// error log.
#[pyfunction]
fn emit(level: u32, text: &str) {
    let level = match level {
        40.. => log::Level::Error,
        30..=39 => log::Level::Warn,
        20..=29 => log::Level::Info,
        _ => log::Level::Debug,
    };
    log::log!(level, "{text}");
}

/// The runtime's scope and the config file's worker-side hooks, loaded
/// once in the zygote, before the workers are forked: they share them,
/// and the file runs once rather than in every worker.
static PREPARED: OnceLock<(Py<PyDict>, Py<PyAny>)> = OnceLock::new();

/// The config file that defines worker-side hooks, if any.
fn hooks_file(cfg: &Config) -> Option<&std::path::Path> {
    cfg.config_file.as_deref().filter(|_| hooks::defines_any(cfg, hooks::WORKER_SIDE))
}

/// Load the runtime and the config file's worker-side hooks, once per
/// process: in the zygote, for every worker it forks (or in a worker
/// forked without one). The error is the traceback.
pub fn prepare(cfg: &Config) -> Result<(), String> {
    let Some(target) = hooks_file(cfg).filter(|_| PREPARED.get().is_none()) else { return Ok(()) };
    Python::attach(|py| {
        let loaded = (|| -> PyResult<(Py<PyDict>, Py<PyAny>)> {
            wsgi::app_dirs_on_path(py, &cfg.pythonpath)?;
            let scope = PyDict::new(py);
            py.run(&hooks::runtime_code(), Some(&scope), None)?;
            let load = scope.get_item("load_hooks")?.ok_or_else(|| PyRuntimeError::new_err("runtime incomplete"))?;
            let found = load.call1((target.display().to_string(), hooks::WORKER_SIDE.to_vec()))?;
            Ok((scope.unbind(), found.unbind()))
        })();
        let loaded = loaded.map_err(|e| wsgi::format_traceback(py, &e))?;
        let _ = PREPARED.set(loaded);
        Ok(())
    })
}

impl Hooks {
    /// The worker's hooks when the config file defines any worker-side
    /// one (loaded by [`prepare`]); the error is the traceback.
    pub fn load(spec: &WorkerSpec<'_>) -> Result<Option<Hooks>, String> {
        let cfg = spec.cfg;
        prepare(cfg)?;
        let Some((scope, found)) = PREPARED.get() else { return Ok(None) };
        // Gunicorn's worker sees the master's pid, the count wanted, and
        // itself; the siblings (`server.WORKERS`) are not given.
        let server = ServerPicture { pid: spec.master.as_raw(), num_workers: cfg.workers, reexec_pid: 0, workers: Vec::new() };
        let me = WorkerPicture { pid: Some(std::process::id() as i32), age: spec.age, ..WorkerPicture::default() };
        let state = hooks::worker_state(cfg, &server, me);
        let per_request = hooks::defines_any(cfg, &["pre_request", "post_request"]);
        Python::attach(|py| {
            let loaded = (|| -> PyResult<Py<PyAny>> {
                wsgi::app_dirs_on_path(py, &cfg.pythonpath)?;
                let class = scope.bind(py).get_item("WorkerHooks")?.ok_or_else(|| PyRuntimeError::new_err("runtime incomplete"))?;
                let obj = class.call1((found.bind(py), state, wrap_pyfunction!(emit, py)?))?;
                obj.call_method0("install_signal_handlers")?;
                Ok(obj.unbind())
            })();
            loaded.map(|obj| Some(Hooks { obj, per_request })).map_err(|e| wsgi::format_traceback(py, &e))
        })
    }

    /// post_fork(server, worker), before the app is imported; the error is
    /// the traceback.
    pub fn post_fork(&self) -> Result<(), String> {
        self.call("post_fork", PyTuple::empty)
    }

    /// post_worker_init(worker), once the app is imported.
    pub fn post_worker_init(&self, app: &Py<PyAny>) -> Result<(), String> {
        self.call("post_worker_init", |py| PyTuple::new(py, [app.clone_ref(py)]).expect("a one-item tuple"))
    }

    /// worker_exit(server, worker), as the worker ends (its exceptions are
    /// logged by the runtime).
    pub fn worker_exit(&self) {
        let _ = self.call("worker_exit", PyTuple::empty);
    }

    /// The object the request path calls (`pre_request`, `post_request`),
    /// when the config file defines either.
    pub fn per_request(&self) -> Option<Py<PyAny>> {
        self.per_request.then(|| Python::attach(|py| self.obj.clone_ref(py)))
    }

    fn call(&self, method: &str, args: impl for<'py> FnOnce(Python<'py>) -> Bound<'py, PyTuple>) -> Result<(), String> {
        Python::attach(|py| {
            self.obj.bind(py).call_method1(method, args(py)).map(drop).map_err(|e| {
                let traceback = wsgi::format_traceback(py, &e);
                log::error!("Exception in worker process ({method} hook):\n{traceback}");
                traceback
            })
        })
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // Python's objects go while Python runs, with the GIL held.
        Python::attach(|py| drop(std::mem::replace(&mut self.obj, py.None())));
    }
}

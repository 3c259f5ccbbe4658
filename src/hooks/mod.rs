//! Gunicorn's server hooks, defined in a Python config file and run at
//! Gunicorn's moments with Gunicorn's arguments.
//!
//! The master runs no Python, so its hooks (on_starting, when_ready,
//! pre_fork, child_exit, ...) run in the hook process: the rwsgi binary
//! started again (`process`), which loads the config file with its own
//! CPython and runs each call the master sends (`crate::master` drives
//! it). The workers run theirs (post_fork, pre_request, worker_exit, ...)
//! in their own interpreter (`crate::worker`). Both sides build the
//! objects hooks receive (`server`, `worker`, `req`, `resp`, `cfg`, `log`)
//! with `runtime.py`, from the JSON pictures made here.

pub mod process;

use serde_json::{json, Value};

use crate::config::Config;

/// The hooks that run in the hook process, for the master.
pub const MASTER_SIDE: &[&str] =
    &["on_starting", "on_reload", "when_ready", "pre_fork", "pre_exec", "child_exit", "nworkers_changed", "on_exit"];

/// The hooks that run in the workers.
pub const WORKER_SIDE: &[&str] =
    &["post_fork", "post_worker_init", "worker_int", "worker_abort", "pre_request", "post_request", "worker_exit"];

/// rwsgi's Python side of the hooks (and of reading a config file).
pub const RUNTIME: &str = include_str!("runtime.py");

/// `RUNTIME` as code for `py.run`.
pub fn runtime_code() -> std::ffi::CString {
    std::ffi::CString::new(RUNTIME).expect("runtime.py holds no NUL byte")
}

/// Whether `cfg`'s config file defines any of `hooks`.
pub fn defines_any(cfg: &Config, hooks: &[&str]) -> bool {
    cfg.hooks.iter().any(|h| hooks.contains(&h.as_str()))
}

/// A worker as hooks see it (Gunicorn's `worker` object).
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerPicture {
    /// Its pid; `None` before the fork (Gunicorn's `"[booting]"`).
    pub pid: Option<i32>,
    /// Spawn order, from 1.
    pub age: u64,
    /// It finished booting.
    pub booted: bool,
    /// It was aborted as stuck.
    pub aborted: bool,
    /// Requests it served.
    pub nr: u64,
}

impl WorkerPicture {
    /// As JSON for `runtime.py`'s `Worker`.
    pub fn to_json(self) -> Value {
        let pid = self.pid.map_or_else(|| json!("[booting]"), |p| json!(p));
        json!({"pid": pid, "age": self.age, "booted": self.booted, "aborted": self.aborted, "nr": self.nr,
               "alive": self.pid.is_none() || !self.aborted})
    }
}

/// The master as hooks see it (Gunicorn's `server`, the arbiter).
#[derive(Debug)]
pub struct ServerPicture {
    /// The master's pid.
    pub pid: i32,
    /// Workers wanted (`server.num_workers`).
    pub num_workers: usize,
    /// The new master of a binary upgrade, while it runs.
    pub reexec_pid: i32,
    /// The workers it has (`server.WORKERS`).
    pub workers: Vec<WorkerPicture>,
}

impl ServerPicture {
    /// As JSON for `runtime.py`'s `Server`.
    pub fn to_json(&self) -> Value {
        let workers: Vec<Value> = self.workers.iter().map(|w| w.to_json()).collect();
        json!({"pid": self.pid, "num_workers": self.num_workers, "reexec_pid": self.reexec_pid, "workers": workers})
    }
}

/// What a worker's hooks need to build their objects: the settings, the
/// master and the worker itself.
pub fn worker_state(cfg: &Config, server: &ServerPicture, worker: WorkerPicture) -> String {
    json!({"cfg": cfg.to_json(), "server": server.to_json(), "worker": worker.to_json()}).to_string()
}

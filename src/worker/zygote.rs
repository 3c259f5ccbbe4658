//! The zygote: a process the master forks for each generation of workers,
//! which starts CPython once (and with `--preload` imports the app), then
//! forks the generation's workers from itself when the master asks, so
//! that they share its memory copy-on-write: the interpreter, rwsgi's
//! modules and, preloaded, the app.
//!
//! The master still supervises every worker directly. It is the workers'
//! subreaper, and the zygote forks each worker through a short-lived
//! intermediate process that exits at once: the worker is then the
//! master's child, which reaps it and reads its exit status, as for a
//! worker it forked itself. The zygote only tells the master the new pid.
//!
//! Its line to the master (a socket pair; one text line per message):
//! the zygote says `ready` once booted; the master says `spawn SLOT AGE`,
//! and the zygote answers `pid PID` or `error WHY`. It ends when the
//! master closes its end, or with the master (PDEATHSIG).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::{ForkResult, Pid};
use pyo3::prelude::*;

use super::{become_worker_user, capture_output, open_access_log, prepare_python, ExitReason, Start, WorkerSpec};
use crate::config::Config;
use crate::logging::AccessLog;
use crate::net::Listener;
use crate::sys::{self, Scoreboard};
use crate::wsgi;

/// The access log the zygote opened, which each worker forked from it
/// takes (its own copy, made by the fork).
static ACCESS_LOG: std::sync::Mutex<Option<AccessLog>> = std::sync::Mutex::new(None);

/// In a worker forked from the zygote: the access log it opened.
pub(super) fn take_access_log() -> Option<AccessLog> {
    ACCESS_LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// What the zygote is handed at fork, by the master.
pub struct ZygoteSpec<'a> {
    /// The settings of its generation.
    pub cfg: &'a Config,
    /// The sockets its workers accept on.
    pub listeners: &'a [std::rc::Rc<Listener>],
    /// The shared scoreboard.
    pub board: &'a Scoreboard,
    /// The master's pid.
    pub master: Pid,
    /// Its end of the line to the master.
    pub line: OwnedFd,
    /// `--reload`: where its workers report their imported files.
    pub reload_dir: Option<&'a Path>,
    /// Its generation's hand-off pair, for its workers.
    pub handoff: Option<&'a super::handoff::Channel>,
}

/// Run the zygote in a freshly forked child of the master; never returns.
/// A worker forked from it leaves through here too, as a worker.
pub fn run(spec: ZygoteSpec<'_>) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match boot(&spec) {
        Ok(app) => serve(&spec, app.as_ref()),
        Err(reason) => reason.code(),
    }))
    .unwrap_or(ExitReason::Panicked.code());
    sys::exit_now(code)
}

/// Signals, descriptors, title, CPython, and with `--preload` the app.
fn boot(spec: &ZygoteSpec<'_>) -> Result<Option<Py<PyAny>>, ExitReason> {
    let cfg = spec.cfg;
    if let Err(e) = sys::install_zygote_signals() {
        log::error!("cannot set up the zygote's signals: {e}");
        return Err(ExitReason::BootError);
    }
    let mut keep: Vec<RawFd> = spec.listeners.iter().map(|l| l.as_raw_fd()).collect();
    keep.extend(crate::logging::log_fds());
    keep.push(spec.line.as_raw_fd());
    keep.extend(spec.handoff.iter().flat_map(|h| h.fds()));
    sys::close_inherited_except(&keep);
    if let Ok(false) = sys::follow_master(spec.master) {
        return Err(ExitReason::Stopped);
    }
    sys::set_process_title("rwsgi: zygote", &format!("rwsgi: zygote [{}]", cfg.proc_name));
    log::info!("Booting zygote with pid: {}", std::process::id());
    // Opened while still root, for the workers to inherit.
    let access_log = open_access_log(cfg)?;
    *ACCESS_LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = access_log;
    capture_output(cfg);
    become_worker_user(cfg)?;
    prepare_python(cfg).map_err(|(reason, e)| {
        log::error!("{e}");
        reason
    })?;
    warm_up();
    super::hooks::prepare(cfg).map_err(|traceback| {
        log::error!("Exception in the zygote (loading the config file's hooks):\n{traceback}");
        ExitReason::BootError
    })?;
    let app = if cfg.preload_app { Some(preload(spec)?) } else { None };
    Ok(app)
}

/// The standard library modules a Gunicorn worker has loaded before it
/// imports the application (Gunicorn's own imports), less the few web
/// frameworks do not use (`importlib.metadata`, `zipfile`, `csv`, ...):
/// imported here, so that every worker shares them, as Gunicorn's workers
/// share them with its master.
const WARM_MODULES: &[&str] = &[
    "argparse", "array", "ast", "atexit", "base64", "binascii", "bisect", "bz2", "calendar", "collections.abc",
    "concurrent.futures", "copy", "copyreg", "datetime", "dis", "email.header", "email.message", "email.utils", "enum",
    "errno", "fcntl", "fnmatch", "gettext", "glob", "grp", "heapq", "html", "inspect", "ipaddress", "json", "linecache",
    "locale", "logging.config", "logging.handlers", "lzma", "math", "opcode", "pathlib", "pickle", "platform", "pwd",
    "queue", "quopri", "random", "re", "select", "selectors", "shutil", "signal", "socket", "socketserver", "ssl",
    "string", "struct", "tempfile", "textwrap", "threading", "tokenize", "traceback", "typing", "urllib.parse",
    "weakref", "zlib",
];

/// Import [`WARM_MODULES`]; one that is missing (a Python built without
/// it) is skipped.
fn warm_up() {
    Python::attach(|py| {
        for name in WARM_MODULES {
            if let Err(e) = py.import(*name) {
                log::debug!("zygote: {name} not imported: {e}");
            }
        }
    });
}

/// `--preload`: import the app here, once, for every worker; say which
/// threads it started (they do not survive a fork).
fn preload(spec: &ZygoteSpec<'_>) -> Result<Py<PyAny>, ExitReason> {
    Python::attach(|py| {
        let app = wsgi::load_app(py, spec.cfg).map_err(|e| {
            spec.board.report_boot_error(&e.into_text());
            ExitReason::AppLoadError
        })?;
        let threads: Vec<String> = py
            .import("threading")
            .and_then(|t| t.call_method0("enumerate"))
            .and_then(|all| all.extract::<Vec<Bound<'_, PyAny>>>())
            .map(|all| all.iter().skip(1).filter_map(|t| t.getattr("name").and_then(|n| n.extract()).ok()).collect())
            .unwrap_or_default();
        if !threads.is_empty() {
            log::warn!(
                "--preload: the application started threads on import ({}); they do not run in the workers, \
                 which are forked from this process: start them in a post_fork hook instead",
                threads.join(", ")
            );
        }
        Ok(app)
    })
}

/// Say `ready`, then fork a worker for each `spawn` the master asks for.
fn serve(spec: &ZygoteSpec<'_>, app: Option<&Py<PyAny>>) -> i32 {
    let Ok(stream) = spec.line.try_clone().map(UnixStream::from) else { return ExitReason::BootError.code() };
    let mut writer = stream.try_clone().expect("a socket descriptor can be duplicated");
    if writeln!(writer, "ready").is_err() {
        return 0;
    }
    let mut reader = BufReader::new(stream);
    loop {
        // Between requests, and at least every quarter second: USR1's
        // reopened logs, for the workers forked from now on.
        if reader.buffer().is_empty() && !crate::sys::wait_readable(reader.get_ref(), Duration::from_millis(250)) {
            if sys::take_reopen_request() {
                reopen_logs(spec.cfg);
            }
            continue;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end();
        let answer = match parse_spawn(line) {
            Some((slot, age)) => match fork_worker(spec, app, slot, age) {
                Ok(pid) => format!("pid {pid}"),
                Err(e) => format!("error {e}"),
            },
            None => format!("error unknown request {line:?}"),
        };
        if writeln!(writer, "{answer}").is_err() {
            break;
        }
    }
    0
}


/// USR1 in the zygote: the error log, the access log its workers take,
/// and `--capture-output`, on the files as they are now.
fn reopen_logs(cfg: &Config) {
    if let Err(e) = crate::logging::reopen_error_log() {
        log::error!("{e}");
    }
    if let Some(Err(e)) = ACCESS_LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(AccessLog::reopen) {
        log::error!("{e}");
    }
    capture_output(cfg);
}

fn parse_spawn(line: &str) -> Option<(usize, u64)> {
    let mut words = line.split_whitespace();
    if words.next()? != "spawn" {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Fork a worker through an intermediate process that exits at once, so
/// that the master adopts it; returns its pid. CPython's fork protocol
/// is kept (`PyOS_BeforeFork` and the two `AfterFork`s), and its objects
/// are frozen first, so the collector does not touch, and so copy, the
/// pages the workers share.
#[allow(unsafe_code)]
fn fork_worker(spec: &ZygoteSpec<'_>, app: Option<&Py<PyAny>>, slot: usize, age: u64) -> Result<Pid, String> {
    Python::attach(|py| py.import("gc").and_then(|gc| gc.call_method0("freeze")).map(drop)).map_err(|e| e.to_string())?;
    let (read, write) = nix::unistd::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    // SAFETY: this thread holds no GIL (no pyo3 guard is alive here), so
    // taking it with the C API and giving it back around the fork is
    // balanced. The zygote runs one thread of its own; threads a preloaded
    // app started (warned about) do not exist in the child, which is then
    // in the state os.fork leaves a child in: CPython's protocol resets its
    // own locks, and libc's fork those of malloc.
    unsafe {
        let gil = pyo3::ffi::PyGILState_Ensure();
        pyo3::ffi::PyOS_BeforeFork();
        match sys::fork() {
            Ok(ForkResult::Child) => {
                drop(read);
                intermediate(spec, app, slot, age, write, gil)
            }
            Ok(ForkResult::Parent { child }) => {
                pyo3::ffi::PyOS_AfterFork_Parent();
                pyo3::ffi::PyGILState_Release(gil);
                drop(write);
                let pid = read_pid(read);
                let _ = nix::sys::wait::waitpid(child, None);
                pid
            }
            Err(e) => {
                pyo3::ffi::PyOS_AfterFork_Parent();
                pyo3::ffi::PyGILState_Release(gil);
                Err(format!("fork failed: {e}"))
            }
        }
    }
}

/// The intermediate process: fork the worker, tell the zygote its pid,
/// and exit, leaving it to the master (its subreaper).
#[allow(unsafe_code)]
fn intermediate(
    spec: &ZygoteSpec<'_>,
    app: Option<&Py<PyAny>>,
    slot: usize,
    age: u64,
    write: OwnedFd,
    gil: pyo3::ffi::PyGILState_STATE,
) -> ! {
    // SAFETY: a child of the single-threaded zygote: still one thread.
    match unsafe { sys::fork() } {
        Ok(ForkResult::Child) => {
            drop(write);
            // SAFETY: CPython's documented order in a forked child, with
            // the GIL state taken before the fork.
            unsafe {
                pyo3::ffi::PyOS_AfterFork_Child();
                pyo3::ffi::PyGILState_Release(gil);
            }
            let worker = WorkerSpec {
                cfg: spec.cfg,
                listeners: spec.listeners,
                board: spec.board,
                slot,
                master: spec.master,
                age,
                reload_dir: spec.reload_dir,
                start: Start::Zygote { preloaded: app },
                handoff: spec.handoff,
            };
            super::run(worker)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::unistd::write(&write, child.as_raw().to_string().as_bytes());
            sys::exit_now(0)
        }
        Err(_) => sys::exit_now(1),
    }
}

/// The worker's pid, as the intermediate wrote it.
fn read_pid(read: OwnedFd) -> Result<Pid, String> {
    let mut text = String::new();
    let mut file = std::fs::File::from(read);
    std::io::Read::read_to_string(&mut file, &mut text).map_err(|e| e.to_string())?;
    text.trim().parse::<i32>().map(Pid::from_raw).map_err(|_| "the worker was not forked".to_string())
}

/// A worker forked from the zygote: wait (briefly) until the intermediate
/// has exited and the master, its subreaper, has adopted it, so that its
/// watch on the master is on the master.
pub fn wait_for_adoption(master: Pid) {
    let until = Instant::now() + Duration::from_secs(2);
    while nix::unistd::getppid() != master && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

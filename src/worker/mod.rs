//! A worker process: the boot order after fork, and the serve loop.
//! Workers are forked from their generation's zygote (`zygote`), which
//! started CPython once for all of them.
//!
//! The loop (`server`) polls the listening sockets and the parked
//! connections (idle keep-alive ones, those whose request head is still
//! arriving, and closing ones) with mio, so a slow or idle client never
//! blocks the worker. When a request is decoded ([`crate::wire`]) it is
//! served to the end — app call, body, response — with every socket wait
//! bounded by `--timeout`: on the loop's own thread (`--threads 1`), or on
//! one of the request threads (`threads`). The worker never forks and
//! never touches another worker.
//!
//! Files: `conn` (one connection, its state and deadline), `server` (the
//! loop), `handler` (serving one request), `hold` (responses held for the
//! end of a turn), `threads` (request threads), `hooks` (the config
//! file's worker-side server hooks), `reload` (the imported files, for
//! `--reload`), `zygote` (the process workers are forked from).

mod conn;
mod handler;
pub mod handoff;
mod hold;
mod hooks;
mod reload;
mod server;
mod signals;
mod threads;
pub mod zygote;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::{Poll, Token};
use pyo3::prelude::*;

use crate::config::Config;
use crate::logging::AccessLog;
use crate::net::Listener;
use crate::sys::{self, Scoreboard, SlotState};
use crate::wsgi::{self, App, ListenerInfo};
use handler::Handler;
use handoff::Lender;
use hooks::Hooks;
use server::{Mode, Server};
use signals::SignalPipe;
use threads::Pool;

/// Why a worker process ends; the master reads it from the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Asked to stop, and stopped.
    Stopped,
    /// Could not boot (Python would not start, a setting it applies failed).
    BootError,
    /// The application could not be imported.
    AppLoadError,
    /// rwsgi itself panicked (a bug); the master replaces the worker.
    Panicked,
}

impl ExitReason {
    /// The one table from reason to exit status (Gunicorn's numbers).
    pub fn code(self) -> i32 {
        match self {
            ExitReason::Stopped => 0,
            ExitReason::BootError => 3,
            ExitReason::AppLoadError => 4,
            ExitReason::Panicked => 70,
        }
    }

    /// The reason an exit status stands for, if it is one of rwsgi's.
    pub fn from_code(code: i32) -> Option<ExitReason> {
        [ExitReason::Stopped, ExitReason::BootError, ExitReason::AppLoadError, ExitReason::Panicked]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// What a worker is handed at fork: plain data built by the master.
pub struct WorkerSpec<'a> {
    /// The settings of the worker's generation.
    pub cfg: &'a Config,
    /// The sockets it accepts on.
    pub listeners: &'a [std::rc::Rc<Listener>],
    /// The shared scoreboard.
    pub board: &'a Scoreboard,
    /// Its slot in the scoreboard.
    pub slot: usize,
    /// The master's pid: a worker whose master is gone stops.
    pub master: nix::unistd::Pid,
    /// Its place in the order workers were forked, from 1 (`worker.age`).
    pub age: u64,
    /// `--reload`: where to say which source files the app imported.
    pub reload_dir: Option<&'a std::path::Path>,
    /// Where its Python comes from.
    pub start: Start<'a>,
    /// Its generation's hand-off pair (`--handoff-after`).
    pub handoff: Option<&'a handoff::Channel>,
}

/// How a worker's interpreter comes to it.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    /// Forked from the master: it starts CPython and imports the app.
    Fresh,
    /// Forked from its generation's zygote, CPython running, and with
    /// `--preload` the app imported there.
    Zygote {
        /// The application the zygote imported (`--preload`).
        preloaded: Option<&'a Py<PyAny>>,
    },
}

/// Run a worker in a freshly forked child; never returns. A panic ends
/// the worker here: it must never unwind into the master's frames that
/// the child inherited.
pub fn run(spec: WorkerSpec<'_>) -> ! {
    let reason = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match boot(&spec) {
        Ok(booted) => {
            spec.board.set_state(spec.slot, SlotState::Idle);
            // Kept open until the process exits: CPython's wakeup fd and
            // rwsgi's TERM handler write to it until then.
            let (_signals, hooks) = serve_until_stopped(&spec, booted);
            if let Some(hooks) = hooks {
                hooks.worker_exit();
            }
            finalize_python(spec.cfg.graceful_timeout);
            ExitReason::Stopped
        }
        Err(reason) => reason,
    }))
    .unwrap_or(ExitReason::Panicked);
    sys::exit_now(reason.code())
}

/// What a booted worker serves with.
struct Booted {
    app: App,
    access_log: Option<AccessLog>,
    /// TERM as Python sees it (see `signals`); `None` when it could not be
    /// set up, and TERM then reaches rwsgi's own handler alone.
    signals: Option<SignalPipe>,
    /// The config file's worker-side server hooks, when it has any.
    hooks: Option<Hooks>,
}

/// Serve until stopped, then let go of the app's objects while Python
/// still runs. Hands back the signal pipe, for the caller to keep open,
/// and the hooks, for worker_exit.
fn serve_until_stopped(spec: &WorkerSpec<'_>, booted: Booted) -> (Option<SignalPipe>, Option<Hooks>) {
    let Booted { app, access_log, signals, hooks } = booted;
    let handler = Handler { cfg: spec.cfg, board: spec.board, slot: spec.slot, app, access_log };
    if let Err(e) = serve(spec, &handler, signals.as_ref()) {
        log::error!("worker failed: {e}");
    }
    Python::attach(|_| drop(handler));
    (signals, hooks)
}

/// Load the app once in this process and report: `--check-config`.
pub fn check_app(cfg: &Config) -> Result<(), String> {
    prepare_python(cfg).map_err(|(_, e)| e)?;
    Python::attach(|py| {
        wsgi::load_app(py, cfg).map(drop).map_err(wsgi::LoadError::into_text)
    })
}

/// The fixed boot order after fork: the worker's own signal handlers and
/// its mark on processes forked from it, inherited descriptors closed, the
/// heartbeat, the process title, a watch on the master, the access log
/// (opened before privileges drop, like the error log the master opened),
/// the user and group, `-e` and CPython, Python's SIGTERM handler, the
/// config file's worker-side hooks (and their signal handlers),
/// faulthandler, post_fork, the app, post_worker_init, then SIGTERM back
/// to rwsgi's handler (see `signals`). A worker forked from a zygote
/// first waits to be the master's child, and finds the access log, the
/// user and group, CPython (and with `--preload` the app) set up there.
fn boot(spec: &WorkerSpec<'_>) -> Result<Booted, ExitReason> {
    let cfg = spec.cfg;
    if let Err(e) = sys::install_worker_signals() {
        log::error!("cannot set up worker signals: {e}");
        return Err(ExitReason::BootError);
    }
    if let Err(e) = sys::mark_forked_children() {
        log::error!("cannot watch for processes forked by the application: {e}");
        return Err(ExitReason::BootError);
    }
    // A worker forked from a zygote has the access log it opened (before
    // it gave up root, as a worker does on its own).
    let inherited_log = if let Start::Zygote { .. } = spec.start { zygote::take_access_log() } else { None };
    let mut keep: Vec<RawFd> = spec.listeners.iter().map(|l| l.as_raw_fd()).collect();
    keep.extend(crate::logging::log_fds());
    keep.extend(inherited_log.as_ref().and_then(AccessLog::fd));
    keep.extend(spec.handoff.iter().flat_map(|h| h.fds()));
    sys::close_inherited_except(&keep);
    sys::set_heartbeat(spec.board, spec.slot);
    spec.board.set_worker_board();
    // Named before anything else can see it (a worker from the zygote
    // still bears the zygote's title).
    sys::set_process_title("rwsgi: worker", &format!("rwsgi: worker [{}]", cfg.proc_name));
    if let Start::Zygote { .. } = spec.start {
        zygote::wait_for_adoption(spec.master);
    }
    match sys::follow_master(spec.master) {
        Ok(true) => {}
        Ok(false) => return Err(ExitReason::Stopped),
        Err(e) => log::warn!("cannot ask to be stopped with the master: {e}"),
    }
    log::info!("Booting worker with pid: {}", std::process::id());
    let access_log = match spec.start {
        Start::Fresh => {
            let opened = open_access_log(cfg)?;
            become_worker_user(cfg)?;
            prepare_python(cfg).map_err(|(reason, e)| {
                log::error!("{e}");
                reason
            })?;
            opened
        }
        // The zygote did all that.
        Start::Zygote { .. } => inherited_log,
    };
    capture_output(cfg);
    let signals = SignalPipe::install().map_err(|e| log::warn!("{e}")).ok();
    // Before faulthandler: its SIGABRT dump hands over to the handler it
    // found, the hooks' (see `enable_faulthandler`).
    let hooks = Hooks::load(spec).map_err(|traceback| {
        log::error!("Exception in worker process (loading the config file's hooks):\n{traceback}");
        ExitReason::BootError
    })?;
    enable_faulthandler();
    let app = boot_app(spec, hooks.as_ref()).inspect_err(|_| {
        // As Gunicorn: worker_exit even for a worker that failed to boot.
        if let Some(hooks) = &hooks {
            hooks.worker_exit();
        }
    })?;
    if let Some(Err(e)) = signals.as_ref().map(SignalPipe::take_over_term) {
        log::warn!("{e}");
    }
    Ok(Booted { app, access_log, signals, hooks })
}

/// post_fork, the app, post_worker_init: the app ready to serve, with the
/// per-request hooks when defined. A hook that raises fails the boot.
fn boot_app(spec: &WorkerSpec<'_>, hooks: Option<&Hooks>) -> Result<App, ExitReason> {
    let hook_failed = |_| ExitReason::BootError;
    if let Some(hooks) = hooks {
        hooks.post_fork().map_err(hook_failed)?;
    }
    let loaded = match spec.start {
        Start::Zygote { preloaded: Some(app) } => Python::attach(|py| prepare_app(spec, py, app.clone_ref(py))),
        _ => load_app(spec),
    };
    let app = loaded.map_err(|text| {
        // The first worker to fail tells the master; the master prints it
        // once, however many workers fail the same way.
        spec.board.report_boot_error(&text);
        ExitReason::AppLoadError
    })?;
    let Some(hooks) = hooks else { return Ok(app) };
    hooks.post_worker_init(app.callable()).map_err(hook_failed)?;
    Ok(app.with_request_hooks(hooks.per_request()))
}

/// `--user`, `--group`: give up root.
fn become_worker_user(cfg: &Config) -> Result<(), ExitReason> {
    sys::drop_privileges(cfg.user, cfg.group, cfg.initgroups).map_err(|e| {
        log::error!("cannot switch to user {:?} / group {:?}: {e}", cfg.user, cfg.group);
        ExitReason::BootError
    })
}

fn open_access_log(cfg: &Config) -> Result<Option<AccessLog>, ExitReason> {
    AccessLog::open(cfg).map_err(|e| {
        log::error!("{e}");
        ExitReason::BootError
    })
}

/// `--capture-output`: the app's stdout and stderr into the error log
/// (at boot, and again when the log is reopened).
fn capture_output(cfg: &Config) {
    if cfg.capture_output {
        if let Err(e) = sys::redirect_stdio(crate::logging::error_log_fd()) {
            log::warn!("cannot send stdout and stderr to the error log: {e}");
        }
    }
}

/// Import the app and prepare its environ; the error is the text (with
/// the traceback) for the master to print.
fn load_app(spec: &WorkerSpec<'_>) -> Result<App, String> {
    Python::attach(|py| match wsgi::load_app(py, spec.cfg) {
        Ok(callable) => prepare_app(spec, py, callable),
        Err(e) => Err(e.into_text()),
    })
}

/// The app's callable with the environ prepared for this worker's
/// listeners.
fn prepare_app(spec: &WorkerSpec<'_>, py: Python<'_>, callable: Py<PyAny>) -> Result<App, String> {
    let infos: Vec<ListenerInfo> = spec
        .listeners
        .iter()
        .map(|l| {
            let (server_name, server_port) = l.server_name_port();
            ListenerInfo { server_name, server_port }
        })
        .collect();
    App::new(py, callable, &infos, spec.cfg).map_err(|e| {
        wsgi::LoadError { summary: format!("cannot prepare the environ: {e}"), traceback: Some(wsgi::format_traceback(py, &e)) }
            .into_text()
    })
}

/// Serve until stopped: on this thread alone, or with request threads.
fn serve(spec: &WorkerSpec<'_>, handler: &Handler<'_>, signals: Option<&SignalPipe>) -> io::Result<()> {
    let poll = Poll::new()?;
    let threads = spec.cfg.threads;
    if threads <= 1 {
        // The helper thread hands the parked connections over during long
        // app calls, through handles of its own.
        let lender = match (spec.handoff, spec.cfg.handoff_after) {
            (Some(channel), Some(after)) => {
                Some(Arc::new(Lender::new(channel.try_clone()?, poll.registry().try_clone()?, after, spec.slot)))
            }
            _ => None,
        };
        return Server::new(spec, handler, poll, Mode::inline(lender)?, signals)?.serve();
    }
    let pool = Pool::new(mio::Waker::new(poll.registry(), WAKER)?, threads);
    let pool = &pool;
    std::thread::scope(|scope| {
        for i in 0..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("rwsgi-request-{i}"))
                .spawn_scoped(scope, move || pool.run_thread(i, handler));
            if let Err(e) = spawned {
                // The threads already running leave once the pool closes.
                pool.close();
                return Err(e);
            }
        }
        let result = Server::new(spec, handler, poll, Mode::threads(pool), signals).and_then(|mut s| s.serve());
        pool.close();
        result
    })
}

/// The poll token of the request threads' waker.
const WAKER: Token = Token(usize::MAX);
/// The poll token of Python's signal wakeup pipe.
const SIGNAL_PIPE: Token = Token(usize::MAX - 1);

/// Apply `-e`, then start CPython (inside `--virtualenv` when set).
fn prepare_python(cfg: &Config) -> Result<(), (ExitReason, String)> {
    for (k, v) in &cfg.raw_env {
        // The worker is single-threaded here: nothing reads the environment
        // concurrently.
        std::env::set_var(k, v);
    }
    let program = match &cfg.virtualenv {
        Some(venv) => {
            if !venv.join("pyvenv.cfg").is_file() {
                return Err((
                    ExitReason::AppLoadError,
                    format!("virtualenv {}: no pyvenv.cfg there; is it a virtualenv?", venv.display()),
                ));
            }
            Some(venv.join("bin").join("python"))
        }
        None => None,
    };
    sys::init_python(program.as_deref()).map_err(|e| (ExitReason::BootError, e))
}

/// Have CPython write the stack of every thread to the error log when the
/// master sends SIGABRT to a stuck worker. faulthandler's C handler
/// dumps the stacks, then gives the signal to the handler it found: the
/// default one (the worker dies), or Python's when a worker_abort or
/// worker_exit hook is defined (which runs them once Python can). The file is a duplicate of the
/// log's descriptor, so reopening the log never leaves it dangling; it is
/// set again after each reopen.
fn enable_faulthandler() {
    let fd = crate::logging::error_log_fd();
    Python::attach(|py| {
        let code = std::ffi::CString::new(format!(
            "import faulthandler, os, sys\n\
             old = getattr(sys, '_rwsgi_fault_file', None)\n\
             sys._rwsgi_fault_file = os.fdopen(os.dup({fd}), 'w')\n\
             faulthandler.enable(file=sys._rwsgi_fault_file, all_threads=True)\n\
             if old is not None:\n    old.close()\n"
        ))
        .expect("no NUL in generated code");
        if let Err(e) = py.run(&code, None, None) {
            log::warn!("cannot enable faulthandler: {e}");
        }
    });
}

/// End Python as a normal interpreter exit does, as Gunicorn's workers
/// do: wait for the app's non-daemon threads, run `atexit` handlers, flush
/// and close the files modules hold. A watchdog bounds it by `limit`
/// (`--graceful-timeout`), beating meanwhile, so a thread that never ends
/// cannot keep the worker (or the master's stop) waiting.
fn finalize_python(limit: Duration) {
    let limit = limit.max(Duration::from_secs(1));
    let watchdog = std::thread::Builder::new().name("rwsgi-exit".into()).spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            sys::beat();
            std::thread::sleep(limit.saturating_sub(started.elapsed()).min(Duration::from_secs(1)));
        }
        log::warn!(
            "Python's exit took over {} s (--graceful-timeout): the worker ends without finishing it \
             (an application thread still running?)",
            limit.as_secs()
        );
        sys::exit_now(ExitReason::Stopped.code());
    });
    if let Err(e) = watchdog {
        log::warn!("cannot bound Python's exit: {e}");
    }
    if let Err(e) = sys::finalize_python() {
        log::warn!("{e}");
    }
}

/// This process's resident memory in bytes (from /proc/self/statm).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * page as u64)
}

/// How often an idle worker wakes to beat: a quarter of the heartbeat
/// timeout, at most a second.
fn beat_interval(timeout: Option<Duration>) -> Duration {
    timeout.map_or(Duration::from_secs(1), |t| (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
}

/// A number in `0..=max`, different for each worker (its pid and the
/// clock), for --max-requests-jitter; no cryptographic quality needed.
fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(nanos);
    seed % (max + 1)
}

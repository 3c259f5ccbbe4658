//! The master: binds the listeners, forks workers, and supervises them.
//!
//! Single-threaded and Python-free. Signal handlers (signal-hook) only
//! write to a pipe; the loop wakes on it and acts. The loop is a short list
//! of verbs: wait → drain signals → act → reap → manage workers.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use signal_hook::consts::signal::*;
use signal_hook_mio::v1_0::Signals;

use crate::config::Config;
use crate::net::Listener;
use crate::sys::{self, Scoreboard, SlotState};
use crate::worker::{self, ExitReason, WorkerSpec};

const SIGNALS: Token = Token(0);

/// The signals the master acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    /// TERM: graceful stop.
    Stop,
    /// INT, QUIT: fast stop.
    Quit,
    /// HUP: reload (not in this release: logged and ignored).
    Reload,
    /// TTIN: one worker more.
    Increment,
    /// TTOU: one worker fewer.
    Decrement,
    /// USR1: reopen log files.
    ReopenLogs,
    /// USR2: binary upgrade (not in this release).
    Upgrade,
    /// WINCH: stop workers, keep the master (not in this release).
    Winch,
    /// CHLD: a worker changed state; reaping happens every loop anyway.
    Child,
}

impl Command {
    fn from_signal(sig: i32) -> Option<Command> {
        Some(match sig {
            SIGTERM => Command::Stop,
            SIGINT | SIGQUIT => Command::Quit,
            SIGHUP => Command::Reload,
            SIGTTIN => Command::Increment,
            SIGTTOU => Command::Decrement,
            SIGUSR1 => Command::ReopenLogs,
            SIGUSR2 => Command::Upgrade,
            SIGWINCH => Command::Winch,
            SIGCHLD => Command::Child,
            _ => return None,
        })
    }
}

/// Where the master is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Workers were told to stop; kill what is left at the deadline.
    Stopping { deadline: Instant, exit_code: i32 },
}

struct WorkerEntry {
    slot: usize,
    /// Spawn order: TTOU stops the oldest.
    age: u64,
    /// Sent TERM by TTOU; no longer counted toward the target.
    retiring: bool,
}

/// The supervisor.
pub struct Master {
    cfg: Config,
    listeners: Vec<Listener>,
    board: Scoreboard,
    poll: Poll,
    signals: Signals,
    workers: HashMap<Pid, WorkerEntry>,
    target: usize,
    next_age: u64,
    phase: Phase,
}

impl Master {
    /// Bind every listener and prepare the loop. Errors are one readable
    /// sentence each.
    pub fn new(cfg: Config) -> Result<Master, String> {
        let mut listeners = Vec::new();
        for addr in &cfg.binds {
            let l = Listener::bind(addr, cfg.backlog).map_err(|e| format!("cannot bind {addr}: {e}"))?;
            listeners.push(l);
        }
        let board = Scoreboard::new().map_err(|e| format!("cannot map the scoreboard: {e}"))?;
        let poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        sys::ignore_sigpipe().map_err(|e| format!("cannot ignore SIGPIPE: {e}"))?;
        let target = cfg.workers.min(crate::sys::scoreboard::MAX_SLOTS);
        Ok(Master { cfg, listeners, board, poll, signals, workers: HashMap::new(), target, next_age: 0, phase: Phase::Running })
    }

    /// Supervise until stopped; returns the process exit status.
    pub fn run(mut self) -> i32 {
        log::info!("Starting rwsgi {} [{}]", env!("CARGO_PKG_VERSION"), self.cfg.proc_name);
        for l in &self.listeners {
            log::info!("Listening at: {} ({})", l.describe(), std::process::id());
        }
        log::info!("Using worker: sync");
        let mut events = Events::with_capacity(16);
        loop {
            self.wait(&mut events);
            for command in self.drain_signals() {
                self.act(command);
            }
            self.reap_workers();
            if let Some(code) = self.finished() {
                for l in &self.listeners {
                    l.remove_file();
                }
                log::info!("Shutting down: Master");
                return code;
            }
            self.manage_workers();
        }
    }

    fn wait(&mut self, events: &mut Events) {
        if let Err(e) = self.poll.poll(events, Some(Duration::from_millis(500))) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::error!("poll failed: {e}");
            }
        }
    }

    fn drain_signals(&mut self) -> Vec<Command> {
        self.signals.pending().filter_map(Command::from_signal).collect()
    }

    fn act(&mut self, command: Command) {
        match command {
            Command::Stop => {
                log::info!("Handling signal: term");
                self.stop(true, 0)
            }
            Command::Quit => {
                log::info!("Handling signal: int");
                self.stop(false, 0)
            }
            Command::Reload => log::warning_unsupported("HUP (reload)"),
            Command::Increment => {
                if self.phase == Phase::Running && self.target < crate::sys::scoreboard::MAX_SLOTS {
                    self.target += 1;
                    log::info!("Handling signal: ttin; workers now {}", self.target);
                }
            }
            Command::Decrement => {
                if self.phase == Phase::Running && self.target > 1 {
                    self.target -= 1;
                    log::info!("Handling signal: ttou; workers now {}", self.target);
                }
            }
            Command::ReopenLogs => {
                if let Err(e) = crate::logging::reopen_error_log() {
                    log::error!("{e}");
                }
                self.signal_workers(Signal::SIGUSR1);
            }
            Command::Upgrade => log::warning_unsupported("USR2 (binary upgrade)"),
            Command::Winch => log::warning_unsupported("WINCH"),
            Command::Child => {}
        }
    }

    /// Begin stopping: TERM (graceful) or INT (fast) to every worker.
    fn stop(&mut self, graceful: bool, exit_code: i32) {
        let limit = if graceful { self.cfg.graceful_timeout } else { Duration::from_secs(1) };
        if let Phase::Stopping { deadline, .. } = self.phase {
            if graceful || deadline <= Instant::now() + limit {
                return;
            }
        }
        self.signal_workers(if graceful { Signal::SIGTERM } else { Signal::SIGINT });
        self.phase = Phase::Stopping { deadline: Instant::now() + limit, exit_code };
    }

    fn signal_workers(&self, sig: Signal) {
        for pid in self.workers.keys() {
            let _ = kill(*pid, sig);
        }
    }

    /// Collect every exited worker and say why it went.
    fn reap_workers(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid, Some(code), None),
                WaitStatus::Signaled(pid, sig, _) => (pid, None, Some(sig)),
                _ => continue,
            };
            let Some(entry) = self.workers.remove(&pid) else { continue };
            // A boot failure is a worker that never finished booting; the
            // same status from a serving worker (an app calling
            // os._exit(4)) is just an exit.
            let booting = self.board.state(entry.slot) == SlotState::Booting;
            self.board.release(entry.slot);
            let stopping = self.phase != Phase::Running || entry.retiring;
            let reason = code.and_then(ExitReason::from_code).filter(|r| booting || matches!(r, ExitReason::Stopped | ExitReason::Panicked));
            match (reason, signal) {
                (Some(ExitReason::AppLoadError), _) => {
                    // Printed once: the first failure stops the master, and
                    // only the first worker's text is on the board.
                    if self.phase == Phase::Running {
                        if let Some(text) = self.board.boot_error() {
                            log::error!("Worker {pid} failed to load the application:\n{text}");
                        }
                        log::error!("Reason: App failed to load.");
                    }
                    self.stop(false, ExitReason::AppLoadError.code());
                }
                (Some(ExitReason::BootError), _) => {
                    log::error!("Worker {pid} failed to boot");
                    self.stop(false, ExitReason::BootError.code());
                }
                (Some(ExitReason::Stopped), _) if stopping => log::info!("Worker exiting (pid: {pid})"),
                (Some(ExitReason::Stopped), _) => log::info!("Worker {pid} exited"),
                (Some(ExitReason::Panicked), _) => log::error!("Worker {pid} crashed (a bug in rwsgi; see above)"),
                (None, Some(Signal::SIGKILL)) => log::error!("Worker {pid} was sent SIGKILL! Perhaps out of memory?"),
                (None, Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) if stopping => {
                    log::info!("Worker exiting (pid: {pid})")
                }
                (None, Some(sig)) => log::error!("Worker {pid} was killed by {sig}"),
                (None, None) => log::error!("Worker {pid} exited with status {}", code.unwrap_or(-1)),
            }
        }
    }

    /// The exit status once stopping is done.
    fn finished(&self) -> Option<i32> {
        match self.phase {
            Phase::Stopping { exit_code, .. } if self.workers.is_empty() => Some(exit_code),
            _ => None,
        }
    }

    /// Keep the worker count at its target; kill stragglers at the stop
    /// deadline.
    fn manage_workers(&mut self) {
        match self.phase {
            Phase::Stopping { deadline, .. } => {
                if Instant::now() >= deadline {
                    self.signal_workers(Signal::SIGKILL);
                }
            }
            Phase::Running => {
                let mut missing = self.target.saturating_sub(self.active_workers());
                while missing > 0 && self.spawn_worker() {
                    missing -= 1;
                }
                if self.active_workers() > self.target {
                    let oldest = self.workers.iter_mut().filter(|(_, w)| !w.retiring).min_by_key(|(_, w)| w.age);
                    if let Some((pid, w)) = oldest {
                        w.retiring = true;
                        let _ = kill(*pid, Signal::SIGTERM);
                    }
                }
            }
        }
    }

    /// Workers counted toward the target (not being retired by TTOU).
    fn active_workers(&self) -> usize {
        self.workers.values().filter(|w| !w.retiring).count()
    }

    fn spawn_worker(&mut self) -> bool {
        let used: Vec<usize> = self.workers.values().map(|w| w.slot).collect();
        let Some(slot) = (0..crate::sys::scoreboard::MAX_SLOTS).find(|s| !used.contains(s)) else {
            return false;
        };
        self.board.assign(slot, 0);
        let master = nix::unistd::getpid();
        match sys::fork() {
            Ok(ForkResult::Child) => {
                let spec = WorkerSpec {
                    cfg: &self.cfg,
                    listeners: &self.listeners,
                    board: &self.board,
                    slot,
                    master,
                    inherited: vec![self.poll.as_raw_fd()],
                };
                worker::run(spec)
            }
            Ok(ForkResult::Parent { child }) => {
                self.board.set_pid(slot, child.as_raw());
                self.workers.insert(child, WorkerEntry { slot, age: self.next_age, retiring: false });
                self.next_age += 1;
                true
            }
            Err(e) => {
                log::error!("fork failed: {e}");
                self.board.release(slot);
                false
            }
        }
    }
}

mod log {
    pub use ::log::*;

    pub fn warning_unsupported(what: &str) {
        ::log::warn!("{what} is not supported by this version of rwsgi; ignored");
    }
}

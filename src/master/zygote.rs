//! The master's side of the zygotes (see `worker::zygote`): each
//! generation of workers gets one, forked from the master, and its
//! workers are forked from it. The master waits for its `ready` without
//! blocking (a preloaded import can take long; `--boot-timeout` bounds
//! it); asking for a worker waits for the pid, briefly (a fork), so that
//! the worker is in the master's table before anything can reap it. A
//! zygote that dies is replaced when its generation next needs a worker;
//! one whose import fails fails the start, or the reload, as a worker's
//! would.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{ForkResult, Pid};

use super::exit::Exit;
use super::{Master, Phase};
use crate::sys;
use crate::worker::zygote::{self as child, ZygoteSpec};
use crate::worker::ExitReason;

/// The longest wait for a zygote to fork a worker.
const FORK_WAIT: Duration = Duration::from_secs(5);

/// A generation's zygote, as the master holds it.
pub struct Zygote {
    pid: Pid,
    line: UnixStream,
    ready: bool,
    started: Instant,
    /// What it said, up to an incomplete line.
    read: Vec<u8>,
    /// The master reaped it: its pid is no longer its.
    reaped: bool,
}

impl Zygote {
    /// Whether it has booted (said `ready`); reads what came, no waiting.
    pub fn is_ready(&mut self) -> bool {
        if !self.ready {
            while let Some(line) = self.next_line(Duration::ZERO) {
                self.ready |= line == "ready";
            }
        }
        self.ready
    }

    /// Ask it for a worker in `slot`, the `age`th; its pid.
    pub fn spawn(&mut self, slot: usize, age: u64) -> Result<Pid, String> {
        writeln!(self.line, "spawn {slot} {age}").map_err(|e| format!("cannot ask the zygote for a worker: {e}"))?;
        let until = Instant::now() + FORK_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(line) = self.next_line(left) else {
                return Err(format!("the zygote did not fork a worker within {} s", FORK_WAIT.as_secs()));
            };
            if let Some(pid) = line.strip_prefix("pid ") {
                return pid.parse().map(Pid::from_raw).map_err(|_| format!("the zygote said {line:?}"));
            }
            if let Some(why) = line.strip_prefix("error ") {
                return Err(format!("the zygote could not fork a worker: {why}"));
            }
        }
    }

    /// The next line it says, waiting up to `wait` for it.
    fn next_line(&mut self, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            if let Some(end) = self.read.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.read.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 256];
            match self.line.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.read.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let _ = crate::sys::wait_readable(&self.line, left);
                }
                Err(_) => return None,
            }
        }
    }
}

impl Zygote {
    /// Kill it and reap it (at the master's exit: nothing else reaps it
    /// then; SIGKILL ends it at once).
    fn end(mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
        self.reaped = true;
    }
}

impl Drop for Zygote {
    /// A zygote no longer needed (its generation went, or it failed):
    /// killed (it holds nothing to save; a stopped or stuck one goes too).
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

/// Whether workers are forked from a zygote: always, unless
/// `RWSGI_NO_ZYGOTE` is set (for comparing memory and boot times; read
/// once).
pub fn uses_zygote() -> bool {
    static USES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USES.get_or_init(|| std::env::var_os("RWSGI_NO_ZYGOTE").is_none())
}


impl Master {
    /// Whether generation `id` can have a worker now: once its zygote has
    /// booted (started here when it has none, killed past
    /// `--boot-timeout`); at once with `RWSGI_NO_ZYGOTE`.
    pub(super) fn zygote_ready(&mut self, id: u64) -> bool {
        if !uses_zygote() {
            return true;
        }
        if self.generation(id).zygote.is_none() {
            let zygote = self.start_zygote(id);
            self.generation_mut(id).zygote = zygote;
        }
        let limit = self.generation(id).cfg.boot_timeout;
        let gen = self.generation_mut(id);
        let Some(zygote) = &mut gen.zygote else { return false };
        if zygote.is_ready() {
            return true;
        }
        if limit.is_some_and(|limit| zygote.started.elapsed() > limit) {
            log::error!("The zygote {} did not boot within --boot-timeout; killing it", zygote.pid);
            let _ = kill(zygote.pid, Signal::SIGKILL);
            gen.zygote = None;
        }
        false
    }

    /// Ask generation `id`'s zygote for a worker; its pid. A zygote that
    /// cannot is let go (another starts).
    pub(super) fn spawn_from_zygote(&mut self, id: u64, slot: usize) -> Option<Pid> {
        let age = self.next_age;
        let gen = self.generation_mut(id);
        let result = gen.zygote.as_mut()?.spawn(slot, age);
        match result {
            Ok(pid) => Some(pid),
            Err(e) => {
                log::error!("{e}");
                gen.zygote = None;
                None
            }
        }
    }

    /// Fork generation `id`'s zygote.
    // Forking is the master's job, as for a worker: the master is
    // single-threaded.
    #[allow(unsafe_code)]
    fn start_zygote(&mut self, id: u64) -> Option<Zygote> {
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log::error!("cannot make a line to a zygote: {e}");
                return None;
            }
        };
        // Its workers become the master's children once forked.
        if let Err(e) = sys::become_subreaper() {
            log::error!("cannot adopt the zygote's workers: {e}");
            return None;
        }
        let master = nix::unistd::getpid();
        // SAFETY: the master never starts a thread (see spawn_worker).
        match unsafe { sys::fork() } {
            Ok(ForkResult::Child) => {
                drop(ours);
                let gen = self.generation(id);
                let reload_dir = self.code_watch.as_ref().map(super::reload::CodeWatch::report_dir);
                let spec = ZygoteSpec {
                    cfg: &gen.cfg,
                    listeners: &gen.listeners,
                    board: &self.board,
                    master,
                    line: theirs.into(),
                    reload_dir,
                    handoff: gen.handoff.as_ref(),
                };
                child::run(spec)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(theirs);
                if let Err(e) = ours.set_nonblocking(true) {
                    log::error!("cannot set up the line to the zygote: {e}");
                }
                Some(Zygote { pid: child, line: ours, ready: false, started: Instant::now(), read: Vec::new(), reaped: false })
            }
            Err(e) => {
                log::error!("cannot fork a zygote: {e}");
                None
            }
        }
    }

    /// At exit: end the zygotes and wait for them, so that the listening
    /// sockets they hold are closed once the master is gone (a restart
    /// binds the port again at once).
    pub(super) fn end_zygotes(&mut self) {
        let pending = self.pending.as_mut().map(|p| &mut p.generation);
        for gen in [Some(&mut self.current), pending].into_iter().flatten() {
            if let Some(zygote) = gen.zygote.take() {
                zygote.end();
            }
        }
    }

    /// Send `sig` to the zygotes (USR1: reopen the logs).
    pub(super) fn signal_zygotes(&self, sig: Signal) {
        let pending = self.pending.as_ref().map(|p| &p.generation);
        for gen in [Some(&self.current), pending].into_iter().flatten() {
            if let Some(zygote) = &gen.zygote {
                let _ = kill(zygote.pid, sig);
            }
        }
    }

    /// Whether `pid` was a zygote: if so, it is forgotten, and a failed
    /// import fails its generation (the start, or the reload).
    pub(super) fn zygote_exited(&mut self, pid: Pid, exit: Exit) -> bool {
        let pending = self.pending.as_ref().map(|p| p.generation.id);
        let Some(id) = [Some(self.current.id), pending].into_iter().flatten().find(|id| {
            self.generation(*id).zygote.as_ref().is_some_and(|z| z.pid == pid)
        }) else {
            return false;
        };
        if let Some(mut zygote) = self.generation_mut(id).zygote.take() {
            zygote.reaped = true;
        }
        // Only its boot ends it with these (it logged why, or put the
        // traceback on the board); anything else, a new one can mend.
        let failed = match exit.reason() {
            Some(reason @ (ExitReason::AppLoadError | ExitReason::BootError)) => reason,
            _ => {
                if self.phase == Phase::Running {
                    log::warn!("The zygote {pid} exited ({exit}); another starts when a worker is needed");
                }
                return true;
            }
        };
        let (what, reason) = match failed {
            ExitReason::AppLoadError => ("failed to load the application", "App failed to load."),
            _ => ("failed to boot", "Worker failed to boot."),
        };
        let traceback = self.board.boot_error().map(|t| format!(":\n{t}")).unwrap_or_default();
        self.board.clear_boot_error();
        if pending == Some(id) {
            self.reload_failed(&format!("the zygote {what}{traceback}"));
        } else if self.serving_workers(id) == 0 && self.phase == Phase::Running {
            log::error!("The zygote {pid} {what}{traceback}");
            log::error!("Reason: {reason}");
            self.stop(false, failed.code());
        } else {
            log::error!("The zygote {pid} {what}; the workers serve on{traceback}");
        }
        true
    }
}

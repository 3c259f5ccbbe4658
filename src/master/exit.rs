//! How a child ended, and the one table from a worker's end to its log
//! lines and to what it means for the service.
//!
//! Log levels are an interface: operators alert on errors. A worker the
//! kernel killed (out of memory?) or that crashed is an error, one killed
//! at the end of the graceful timeout a warning, one that stopped as
//! asked is info. The master decides which kind an end is
//! (`Master::classify_exit`); this module owns the words.

use std::fmt;

use log::Level;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys::scoreboard::Recycle;
use crate::worker::ExitReason;

/// How a child process ended, as waitpid tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exit {
    /// It exited with this status.
    Status(i32),
    /// This signal ended it.
    Signal(Signal),
}

impl Exit {
    /// The reason a worker gave by its exit status, if it is one of
    /// rwsgi's.
    pub(super) fn reason(self) -> Option<ExitReason> {
        match self {
            Exit::Status(code) => ExitReason::from_code(code),
            Exit::Signal(_) => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Status(code) => write!(f, "status {code}"),
            Exit::Signal(sig) => write!(f, "killed by {sig}"),
        }
    }
}

/// The next child that has ended, without waiting, with the CPU seconds
/// it used; `None` once there is none.
pub(super) fn reap_next() -> Option<(Pid, Exit, f64)> {
    // What reaping it adds to the children's times is its own.
    let before = children_cpu();
    loop {
        let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Status(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Exit::Signal(sig)),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            // Stopped or continued (job control, a debugger): not an end.
            Ok(_) => continue,
        };
        return Some((pid, exit, (children_cpu() - before).max(0.0)));
    }
}

/// User and system CPU seconds of the children reaped so far.
fn children_cpu() -> f64 {
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| seconds(u.user_time()) + seconds(u.system_time()))
}

/// Why the master told a worker to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Retirement {
    /// Fewer workers wanted: TTOU, WINCH, the control socket.
    ScaledDown,
    /// Its generation was replaced, or a reload that failed was given up.
    Reloaded,
}

/// How a worker's life ended, as far as the log and the service care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ExitKind {
    /// Told to go (TTOU, WINCH, a finished or abandoned reload), or of an
    /// older generation: however it ended, it says nothing about the
    /// workers serving now.
    Retired(Exit, Retirement),
    /// A replacement could not import the application after the service
    /// had served (the code changed on disk): the others serve on.
    AppLoadFailedOthersServe { serving: usize, traceback: String },
    /// The application could not be imported before any worker served:
    /// it never will, so the service stops.
    AppLoadFailed { traceback: Option<String> },
    /// The same while the master is stopping already: nothing to add.
    AppLoadFailedWhileStopping,
    /// Could not boot after the service had served: the others serve on.
    BootFailedOthersServe,
    /// Could not boot before any worker served: the service stops.
    BootFailed,
    /// Stopped as the master asked.
    Stopped,
    /// Stopped cleanly without the master asking (max-requests, memory,
    /// as the worker said; or a TERM from elsewhere); it is replaced.
    StoppedOnItsOwn(Option<Recycle>),
    /// rwsgi itself panicked in the worker (a bug).
    Panicked,
    /// Still running at the end of the graceful timeout, and killed.
    KilledAfterGracefulTimeout,
    /// Aborted as stuck (`murder_stuck_workers`), then gone.
    KilledAsStuck,
    /// SIGKILL from outside rwsgi: most often the kernel's OOM killer.
    KilledOutOfMemory,
    /// Another signal ended it.
    KilledBy(Signal),
    /// An exit status that is not one of rwsgi's reasons.
    Status(i32),
}

/// Every cause a worker exit is counted under, as the metrics show them
/// (each from the start, at 0).
pub(super) const CAUSES: [&str; 10] =
    ["recycled", "memory", "timeout", "crashed", "killed", "scaled_down", "reloaded", "stopped", "exited", "boot_failed"];

impl ExitKind {
    /// The cause `--metrics-bind` counts it under (one of [`CAUSES`]).
    pub fn cause(&self) -> &'static str {
        match self {
            ExitKind::Retired(_, Retirement::ScaledDown) => "scaled_down",
            ExitKind::Retired(_, Retirement::Reloaded) => "reloaded",
            ExitKind::AppLoadFailedOthersServe { .. }
            | ExitKind::AppLoadFailed { .. }
            | ExitKind::AppLoadFailedWhileStopping
            | ExitKind::BootFailedOthersServe
            | ExitKind::BootFailed => "boot_failed",
            ExitKind::Stopped | ExitKind::KilledAfterGracefulTimeout => "stopped",
            ExitKind::StoppedOnItsOwn(Some(Recycle::MaxRequests)) => "recycled",
            ExitKind::StoppedOnItsOwn(Some(Recycle::Memory)) => "memory",
            ExitKind::StoppedOnItsOwn(None) => "exited",
            ExitKind::KilledAsStuck => "timeout",
            ExitKind::KilledOutOfMemory => "killed",
            ExitKind::Panicked | ExitKind::KilledBy(_) | ExitKind::Status(_) => "crashed",
        }
    }

    /// The one table from a worker's end to its log lines: level and text.
    /// `during` is the request (method and path) the worker was serving
    /// when it ended, named where the end was not asked for.
    pub(super) fn log_lines(&self, pid: Pid, during: Option<&str>) -> Vec<(Level, String)> {
        let line = |level, text| vec![(level, text)];
        let during = during.map_or_else(String::new, |r| format!(" while serving {r}"));
        match self {
            ExitKind::Retired(exit, _) => line(Level::Info, format!("Worker exiting (pid: {pid}, {exit})")),
            ExitKind::AppLoadFailedOthersServe { serving, traceback } => line(
                Level::Error,
                format!("Worker {pid} failed to load the application; {serving} workers serve on:\n{traceback}"),
            ),
            ExitKind::AppLoadFailed { traceback } => {
                let mut lines = Vec::new();
                if let Some(text) = traceback {
                    lines.push((Level::Error, format!("Worker {pid} failed to load the application:\n{text}")));
                }
                lines.push((Level::Error, "Reason: App failed to load.".to_string()));
                lines
            }
            ExitKind::AppLoadFailedWhileStopping => Vec::new(),
            ExitKind::BootFailedOthersServe => line(Level::Error, format!("Worker {pid} failed to boot; other workers serve on")),
            ExitKind::BootFailed => line(Level::Error, format!("Worker {pid} failed to boot")),
            ExitKind::Stopped => line(Level::Info, format!("Worker exiting (pid: {pid})")),
            ExitKind::StoppedOnItsOwn(_) => line(Level::Info, format!("Worker {pid} exited")),
            ExitKind::Panicked => line(Level::Error, format!("Worker {pid} crashed{during} (a bug in rwsgi; see above)")),
            ExitKind::KilledAfterGracefulTimeout => {
                line(Level::Warn, format!("Worker {pid} killed after the graceful timeout{during}"))
            }
            ExitKind::KilledAsStuck => line(Level::Error, format!("Worker {pid} killed as stuck{during}; replacing it")),
            ExitKind::KilledOutOfMemory => {
                line(Level::Error, format!("Worker {pid} was sent SIGKILL{during}! Perhaps out of memory?"))
            }
            ExitKind::KilledBy(sig) => line(Level::Error, format!("Worker {pid} was killed by {sig}{during}")),
            ExitKind::Status(code) => line(Level::Error, format!("Worker {pid} exited with status {code}{during}")),
        }
    }

    /// The master's exit status when this end stops the service: a worker
    /// that cannot import the app or boot before any has served would
    /// fail the same way again, so forking more would only loop.
    pub(super) fn stops_master(&self) -> Option<i32> {
        match self {
            ExitKind::AppLoadFailed { .. } | ExitKind::AppLoadFailedWhileStopping => Some(ExitReason::AppLoadError.code()),
            ExitKind::BootFailed => Some(ExitReason::BootError.code()),
            ExitKind::Retired(..)
            | ExitKind::AppLoadFailedOthersServe { .. }
            | ExitKind::BootFailedOthersServe
            | ExitKind::Stopped
            | ExitKind::StoppedOnItsOwn(_)
            | ExitKind::Panicked
            | ExitKind::KilledAfterGracefulTimeout
            | ExitKind::KilledAsStuck
            | ExitKind::KilledOutOfMemory
            | ExitKind::KilledBy(_)
            | ExitKind::Status(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_is_listed() {
        let kinds = [
            ExitKind::Retired(Exit::Status(0), Retirement::ScaledDown),
            ExitKind::Retired(Exit::Status(0), Retirement::Reloaded),
            ExitKind::BootFailed,
            ExitKind::Stopped,
            ExitKind::StoppedOnItsOwn(None),
            ExitKind::StoppedOnItsOwn(Some(Recycle::MaxRequests)),
            ExitKind::StoppedOnItsOwn(Some(Recycle::Memory)),
            ExitKind::KilledAsStuck,
            ExitKind::KilledOutOfMemory,
            ExitKind::Panicked,
        ];
        let causes: std::collections::BTreeSet<&str> = kinds.iter().map(ExitKind::cause).collect();
        assert_eq!(causes, CAUSES.into_iter().collect());
    }

    /// The log lines are what operators grep and alert on, and what the
    /// integration tests look for: each kind's level and text, verbatim.
    #[test]
    fn each_kind_logs_its_line() {
        let pid = Pid::from_raw(42);
        let tb = || "Traceback (most recent call last):\nImportError: nope".to_string();
        let cases: Vec<(ExitKind, Vec<(Level, String)>)> = vec![
            (ExitKind::Retired(Exit::Status(0), Retirement::Reloaded), vec![(Level::Info, "Worker exiting (pid: 42, status 0)".into())]),
            (
                ExitKind::Retired(Exit::Signal(Signal::SIGKILL), Retirement::ScaledDown),
                vec![(Level::Info, "Worker exiting (pid: 42, killed by SIGKILL)".into())],
            ),
            (
                ExitKind::AppLoadFailedOthersServe { serving: 3, traceback: tb() },
                vec![(Level::Error, format!("Worker 42 failed to load the application; 3 workers serve on:\n{}", tb()))],
            ),
            (
                ExitKind::AppLoadFailed { traceback: Some(tb()) },
                vec![
                    (Level::Error, format!("Worker 42 failed to load the application:\n{}", tb())),
                    (Level::Error, "Reason: App failed to load.".into()),
                ],
            ),
            (ExitKind::AppLoadFailed { traceback: None }, vec![(Level::Error, "Reason: App failed to load.".into())]),
            (ExitKind::AppLoadFailedWhileStopping, vec![]),
            (ExitKind::BootFailedOthersServe, vec![(Level::Error, "Worker 42 failed to boot; other workers serve on".into())]),
            (ExitKind::BootFailed, vec![(Level::Error, "Worker 42 failed to boot".into())]),
            (ExitKind::Stopped, vec![(Level::Info, "Worker exiting (pid: 42)".into())]),
            (ExitKind::StoppedOnItsOwn(None), vec![(Level::Info, "Worker 42 exited".into())]),
            (ExitKind::Panicked, vec![(Level::Error, "Worker 42 crashed (a bug in rwsgi; see above)".into())]),
            (ExitKind::KilledAfterGracefulTimeout, vec![(Level::Warn, "Worker 42 killed after the graceful timeout".into())]),
            (ExitKind::KilledAsStuck, vec![(Level::Error, "Worker 42 killed as stuck; replacing it".into())]),
            (ExitKind::KilledOutOfMemory, vec![(Level::Error, "Worker 42 was sent SIGKILL! Perhaps out of memory?".into())]),
            (ExitKind::KilledBy(Signal::SIGSEGV), vec![(Level::Error, "Worker 42 was killed by SIGSEGV".into())]),
            (ExitKind::Status(9), vec![(Level::Error, "Worker 42 exited with status 9".into())]),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.log_lines(pid, None), want, "{kind:?}");
        }
    }

    /// A worker that ended on its own in the middle of a request names it.
    #[test]
    fn unasked_ends_name_the_request_in_progress() {
        let pid = Pid::from_raw(42);
        let during = Some("GET /report");
        let cases = [
            (ExitKind::KilledBy(Signal::SIGSEGV), "Worker 42 was killed by SIGSEGV while serving GET /report"),
            (ExitKind::Status(1), "Worker 42 exited with status 1 while serving GET /report"),
            (ExitKind::KilledOutOfMemory, "Worker 42 was sent SIGKILL while serving GET /report! Perhaps out of memory?"),
            (ExitKind::KilledAsStuck, "Worker 42 killed as stuck while serving GET /report; replacing it"),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.log_lines(pid, during), vec![(Level::Error, want.to_string())], "{kind:?}");
        }
        assert_eq!(ExitKind::Stopped.log_lines(pid, during), vec![(Level::Info, "Worker exiting (pid: 42)".to_string())]);
    }

    /// Only a failure before any worker served stops the service, with
    /// the worker's own status (Gunicorn's 3 and 4).
    #[test]
    fn only_first_boot_failures_stop_the_master() {
        assert_eq!(ExitKind::AppLoadFailed { traceback: None }.stops_master(), Some(4));
        assert_eq!(ExitKind::AppLoadFailedWhileStopping.stops_master(), Some(4));
        assert_eq!(ExitKind::BootFailed.stops_master(), Some(3));
        assert_eq!(ExitKind::BootFailedOthersServe.stops_master(), None);
        assert_eq!(ExitKind::AppLoadFailedOthersServe { serving: 1, traceback: String::new() }.stops_master(), None);
        assert_eq!(ExitKind::KilledOutOfMemory.stops_master(), None);
    }
}

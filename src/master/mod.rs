//! The master: starts up (`start`, a fixed order of steps), binds the
//! listeners, forks workers, and supervises them.
//!
//! Single-threaded and Python-free (`--check-config`, which imports the
//! app, ends before a master exists). Signal handlers (signal-hook) only
//! write to a pipe; the loop wakes on it and acts. Each turn of the loop
//! is a short list of verbs: wait → drain signals → act on each → reap →
//! shut down if stopping is done → murder stuck workers → manage workers →
//! check a reload → announce readiness → check the old master (USR2).
//!
//! A generation is one configuration and its listeners; HUP starts a new
//! one beside the current one and switches once its workers have booted,
//! so a reload that fails leaves the old workers serving. Each generation's
//! workers are forked by its zygote (`zygote`) and adopted by the master.
//!
//! Files: `start` (the start-up order), `exit` (a worker's end and its log
//! line), `zygote` (the generations' zygotes), `hooks` (the hook process),
//! `reload` (`--reload`'s watch), `metrics` (`--metrics-bind`), `control`
//! (the control socket), `multiproc` (prometheus_client's files),
//! `pidfile`.

mod control;
mod exit;
mod hooks;
mod metrics;
mod multiproc;
mod pidfile;
mod reload;
mod start;
mod view;
mod zygote;

pub use metrics::{Family, FAMILIES as METRIC_FAMILIES};
pub use start::start;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{ForkResult, Pid};
use serde_json::json;
use signal_hook::consts::signal::*;
use signal_hook_mio::v1_0::Signals;

use self::exit::{reap_next, Exit, ExitKind, Retirement};
use self::hooks::{hooks_before_start, HookProcess};
use self::reload::CodeWatch;
use self::view::Counts;
use crate::config::{BindAddr, Config};
use crate::hooks::WorkerPicture;
use crate::logging::statsd;
use crate::net::Listener;
use crate::sys::scoreboard::Recycle;
use crate::sys::{self, Scoreboard, SlotState};
use crate::worker::handoff::Channel;
use crate::worker::{self, ExitReason, WorkerSpec};

const SIGNALS: Token = Token(0);

/// The signals the master acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    /// TERM: graceful stop.
    Stop,
    /// INT, QUIT: fast stop.
    Quit,
    /// HUP: reload (a new generation of workers from settings read again).
    Reload,
    /// TTIN: one worker more.
    Increment,
    /// TTOU: one worker fewer.
    Decrement,
    /// USR1: reopen log files.
    ReopenLogs,
    /// USR2: binary upgrade (a new master from the binary on disk).
    Upgrade,
    /// WINCH: stop the workers, keep the master (when daemonized; ignored
    /// otherwise, as a terminal resize sends it).
    Winch,
    /// CHLD: a child (worker, or the master USR2 started) changed state;
    /// reaping happens every turn anyway.
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
    /// `listening`: the sockets still take connections (until the
    /// workers have taken what was queued; see `stop_listening_when_drained`).
    Stopping { deadline: Instant, exit_code: i32, listening: bool },
}

/// A configuration and the listeners it binds: every worker is forked
/// from one generation. HUP builds a new generation beside the current one
/// and switches only once its workers have booted.
struct Generation {
    id: u64,
    cfg: Config,
    /// Shared with the next generation where the address stays the same.
    listeners: Vec<Rc<Listener>>,
    /// Workers wanted (TTIN/TTOU move it).
    target: usize,
    /// The process its workers are forked from (see `zygote`).
    zygote: Option<zygote::Zygote>,
    /// The pair its workers hand connections over on (`--handoff-after`).
    handoff: Option<Channel>,
}

impl Generation {
    /// Generation `id` of `cfg`, wanting its configured number of workers
    /// (as many as the scoreboard holds at most).
    fn new(id: u64, cfg: Config, listeners: Vec<Rc<Listener>>) -> Generation {
        let target = cfg.workers.min(sys::scoreboard::MAX_SLOTS);
        let handoff = cfg.handoff_after.and_then(|_| {
            Channel::new().map_err(|e| log::warn!("cannot make the hand-off pair, connections stay where accepted: {e}")).ok()
        });
        Generation { id, cfg, listeners, target, zygote: None, handoff }
    }
}

/// A reload under way: the new generation and when it began.
struct PendingReload {
    generation: Generation,
    started: Instant,
}

/// A worker the master forked and has not reaped yet.
struct WorkerEntry {
    slot: usize,
    /// Spawn order: TTOU stops the oldest.
    age: u64,
    generation: u64,
    /// Told to stop (TTOU, WINCH, a finished or abandoned reload): not
    /// counted toward the target, and killed at this deadline. A worker
    /// recycling itself (max-requests, memory) is not retiring.
    retiring: Option<Retiring>,
    /// Sent SIGABRT as stuck, at this time; SIGKILL follows after a grace.
    aborted: Option<Instant>,
    started: Instant,
}

/// A worker told to stop: why, and when it is killed if still there.
#[derive(Clone, Copy, Debug)]
struct Retiring {
    why: Retirement,
    until: Instant,
}

/// Re-reads the settings (config file, environment, command line) for a
/// reload.
pub type Reloader = Box<dyn Fn() -> Result<Config, crate::config::ConfigError>>;

/// A worker that dies sooner than this after it was forked, before serving
/// a request, counts as a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(5);

/// How far a worker got before it ended.
#[derive(Clone, Copy, Debug)]
struct Life {
    /// It finished booting (the app loaded).
    booted: bool,
    /// It started serving at least one request.
    served: bool,
}
const SPAWN_DELAY_MIN: Duration = Duration::from_millis(100);
const SPAWN_DELAY_MAX: Duration = Duration::from_secs(10);

/// A loop gap this long means the master itself was paused.
const PAUSE_GAP: Duration = Duration::from_secs(3);

/// How long a stuck worker gets to write its stack before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// A reload's limit when --boot-timeout is 0 (no limit for one worker).
const RELOAD_LIMIT_UNBOUNDED_BOOT: Duration = Duration::from_secs(600);

/// Beyond --boot-timeout, how long a reload may take before it is
/// abandoned (its workers are killed at --boot-timeout; this catches a
/// generation that cannot even fork).
const RELOAD_SLACK: Duration = Duration::from_secs(10);

/// The supervisor.
pub struct Master {
    current: Generation,
    pending: Option<PendingReload>,
    reloader: Reloader,
    /// The directory rwsgi started in: `--chdir` is applied from here
    /// again on reload.
    start_dir: PathBuf,
    board: Scoreboard,
    poll: Poll,
    signals: Signals,
    workers: HashMap<Pid, WorkerEntry>,
    next_age: u64,
    phase: Phase,
    /// Removed (if still ours) when the master is dropped.
    pidfile: Option<pidfile::Pidfile>,
    /// The master this one replaces (USR2), while it runs.
    upgraded_from: Option<Pid>,
    /// The master USR2 started, while it runs: one at a time, and this
    /// master leaves the shared socket files to it.
    upgrade_child: Option<Pid>,
    /// Generations are numbered from this counter, never reused.
    next_generation: u64,
    /// When the loop last ran: after a long gap (the process was paused),
    /// heartbeats are not judged until the workers have had a turn.
    last_loop: Instant,
    /// The command line, for USR2.
    argv: Vec<String>,
    /// The listeners were passed in (systemd's `LISTEN_FDS`, or the old
    /// master's on USR2): a reload keeps them rather than binding the
    /// configured addresses.
    socket_activated: bool,
    /// The listeners outlive rwsgi: systemd passed them, to this master
    /// or to the one it replaced (USR2). A final stop leaves them
    /// listening. Those the old master bound itself are this master's
    /// alone once it is gone, and a final stop stops them listening like
    /// any it bound (`may_stop_listening`).
    sockets_outlive_us: bool,
    /// systemd has been told the service is ready (after the first boot).
    announced_ready: bool,
    /// Workers crashing right after they start are respawned with a
    /// growing delay, so a crash loop cannot make the master spin.
    spawn_delay: Duration,
    next_spawn: Instant,
    /// The master-side server hooks' process, when the config file
    /// defines any.
    hooks: Option<HookProcess>,
    /// The age of the next worker, once pre_fork has been called for it.
    pre_forked: Option<u64>,
    /// USR2 came: the new master starts once pre_exec has returned.
    upgrade_due: bool,
    /// `--reload`'s watch on the application's files.
    code_watch: Option<CodeWatch>,
    /// `--metrics-bind`'s listener, and what it counts.
    metrics: Option<metrics::MetricsServer>,
    /// `--control-socket`.
    control: Option<control::ControlServer>,
    counts: Counts,
}

impl Master {
    /// Take over the listening sockets (passed by the old master on USR2
    /// or by systemd, else bound now), write the pidfile and install the
    /// signal handlers. Errors are one readable sentence each.
    pub fn new(cfg: Config, argv: Vec<String>, reloader: Reloader, start_dir: PathBuf) -> Result<Master, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
        let hooks = hooks_before_start(&cfg, poll.registry());
        let code_watch = CodeWatch::new(&cfg, poll.registry())?;
        let upgraded_from = take_upgraded_from();
        if cfg.preload_app && !zygote::uses_zygote() {
            log::warn!("--preload has no effect with RWSGI_NO_ZYGOTE: each worker imports the application");
        }
        let (listeners, socket_activated, sockets_outlive_us) = open_listeners(&cfg)?;
        let pidfile = write_pidfile(&cfg, upgraded_from)?;
        // A new master of USR2 leaves the old one's metrics files, and its
        // metrics and control sockets until it is gone (`check_old_master`).
        let (metrics, control) = match upgraded_from {
            None => {
                if let Some(dir) = multiproc::directory(&cfg) {
                    multiproc::clear(&dir);
                }
                open_observers(&cfg, poll.registry())?
            }
            Some(_) => (None, None),
        };
        let board = Scoreboard::new().map_err(|e| format!("cannot map the scoreboard: {e}"))?;
        let signals = watch_signals(&poll)?;
        sys::ignore_sigpipe().map_err(|e| format!("cannot ignore SIGPIPE: {e}"))?;
        Ok(Master {
            current: Generation::new(0, cfg, listeners),
            pending: None,
            reloader,
            start_dir,
            board,
            poll,
            signals,
            workers: HashMap::new(),
            next_age: 1,
            phase: Phase::Running,
            pidfile,
            upgraded_from,
            upgrade_child: None,
            next_generation: 1,
            last_loop: Instant::now(),
            argv,
            socket_activated,
            sockets_outlive_us,
            announced_ready: false,
            spawn_delay: Duration::ZERO,
            next_spawn: Instant::now(),
            hooks,
            pre_forked: None,
            upgrade_due: false,
            code_watch,
            metrics,
            control,
            counts: Counts { since: Some(Instant::now()), ..Counts::default() },
        })
    }

    /// Supervise until stopped; returns the process exit status.
    pub fn run(mut self) -> i32 {
        self.log_start();
        self.hook("when_ready", None, vec![]);
        let mut events = Events::with_capacity(16);
        loop {
            self.wait(&mut events);
            for command in self.drain_signals() {
                self.act(command);
            }
            self.reap_workers();
            if let Some(code) = self.finished() {
                self.end_zygotes();
                self.shut_down();
                self.hooks_at_exit();
                return code;
            }
            self.stop_listening_when_drained();
            self.murder_stuck_workers();
            self.manage_workers();
            self.check_reload();
            self.announce_ready();
            self.check_old_master();
        }
    }

    /// Name the process, and say what it serves, where, and how.
    fn log_start(&self) {
        let cfg = &self.current.cfg;
        sys::set_process_title("rwsgi: master", &format!("rwsgi: master [{}]", cfg.proc_name));
        log::info!("Starting rwsgi {} [{}]", env!("CARGO_PKG_VERSION"), cfg.proc_name);
        for l in &self.current.listeners {
            log::info!("Listening at: {} ({})", l.describe(), std::process::id());
        }
        if self.socket_activated {
            let from = if self.upgraded_from.is_some() { "the old master" } else { "systemd (LISTEN_FDS)" };
            log::info!("Using the {} sockets passed by {from}", self.current.listeners.len());
        }
        match (cfg.worker_class, cfg.threads) {
            (crate::config::WorkerClass::Sync, 1) => log::info!("Using worker: sync"),
            // Gunicorn's name for a sync worker with threads.
            (_, n) => log::info!("Using worker: gthread ({n} threads)"),
        }
        if cfg.protocol == crate::config::Protocol::Uwsgi {
            log::info!("Protocol: uwsgi (for nginx uwsgi_pass), not HTTP");
        }
        if cfg.proxy_protocol != crate::config::ProxyProtocol::Off {
            log::info!("Expecting a PROXY protocol header ({:?}) from --proxy-allow-from peers", cfg.proxy_protocol);
        }
    }

    /// Sleep until a signal arrives or it is time to look at the workers
    /// again (sooner while a reload is under way or a spawn is due).
    fn wait(&mut self, events: &mut Events) {
        let hooks_busy = self.hooks.as_ref().is_some_and(HookProcess::busy);
        let mut timeout = if self.pending.is_some() || hooks_busy { Duration::from_millis(50) } else { Duration::from_millis(500) };
        // Workers to fork (at start, after a death): as soon as allowed
        // (the zygote's `ready` and the hooks' answers are looked for at
        // each turn).
        let missing = self.current.target > self.active_workers(self.current.id);
        // (And while a final stop waits to stop the sockets listening: a
        // connection queued meanwhile would be reset.)
        let to_stop_listening = matches!(self.phase, Phase::Stopping { listening: true, .. });
        if (self.phase == Phase::Running && missing && Instant::now() >= self.next_spawn) || to_stop_listening {
            timeout = timeout.min(Duration::from_millis(10));
        }
        let until_spawn = self.next_spawn.saturating_duration_since(Instant::now());
        if !until_spawn.is_zero() {
            timeout = timeout.min(until_spawn);
        }
        if let Some(watch) = &self.code_watch {
            timeout = timeout.min(watch.wake_within(Instant::now()));
        }
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::error!("poll failed: {e}");
            }
        }
        if let Some(hooks) = &mut self.hooks {
            if events.iter().any(|e| e.token() == hooks::TOKEN) {
                hooks.on_ready(self.poll.registry());
            }
            hooks.check_timeout(self.poll.registry());
        }
        self.reload_if_changed(events);
        self.serve_metrics(events);
        self.serve_control(events);
        if self.upgrade_due && !self.hooks.as_ref().is_some_and(HookProcess::busy) {
            self.upgrade_due = false;
            // (Unless a stop came meanwhile.)
            if self.phase == Phase::Running {
                self.start_new_master();
            }
        }
    }

    /// `--metrics-bind`: accept, read and answer its clients.
    fn serve_metrics(&mut self, events: &Events) {
        let Some(mut server) = self.metrics.take() else { return };
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).filter(|t| server.owns(*t)).collect();
        let ready = self.ready();
        for token in tokens {
            server.on_event(self.poll.registry(), token, ready, &mut || self.view());
        }
        server.expire(self.poll.registry());
        self.metrics = Some(server);
    }

    /// `--reload`: a watched file changed (and settled): reload as HUP
    /// does.
    fn reload_if_changed(&mut self, events: &Events) {
        let Some(watch) = &mut self.code_watch else { return };
        if events.iter().any(|e| e.token() == reload::TOKEN) {
            watch.on_events();
        }
        if let Some(path) = watch.due(Instant::now()) {
            log::info!("Reloading: {} changed", path.display());
            self.reload();
        }
    }

    fn drain_signals(&mut self) -> Vec<Command> {
        self.signals.pending().filter_map(Command::from_signal).collect()
    }

    /// Carry out what a signal asked for.
    fn act(&mut self, command: Command) {
        match command {
            Command::Stop => {
                log::info!("Handling signal: term");
                self.stop(true, 0);
            }
            Command::Quit => {
                log::info!("Handling signal: int");
                self.stop(false, 0);
            }
            Command::Reload => {
                log::info!("Handling signal: hup");
                sys::notify_systemd("RELOADING=1\nSTATUS=reloading");
                self.reload();
            }
            Command::Increment => self.raise_target(),
            Command::Decrement => self.lower_target(),
            Command::ReopenLogs => self.reopen_logs(),
            Command::Upgrade => self.upgrade(),
            Command::Winch => self.winch(),
            Command::Child => {}
        }
    }

    /// The last turn: the socket files go, unless the other master of a
    /// USR2 pair still runs (they are its too).
    fn shut_down(&self) {
        if !self.other_master_alive() {
            for l in &self.current.listeners {
                l.remove_file();
            }
        }
        log::info!("Shutting down: Master");
    }

    /// Whether the server should get traffic (`/ready`): a worker of the
    /// current generation serves, and it is not stopping.
    fn ready(&self) -> bool {
        self.phase == Phase::Running && self.serving_workers(self.current.id) > 0
    }

    /// A final stop: once every worker has begun to stop (taking, as it
    /// does, the connections queued on the sockets), the sockets stop
    /// listening, so later connections are refused (a balancer retries
    /// those elsewhere) instead of queued unseen and reset at the close.
    /// Only sockets rwsgi bound itself: one systemd (or a supervisor,
    /// `fd://`) passed lives on after rwsgi, to start it again; and not
    /// while another master shares them (USR2).
    fn stop_listening_when_drained(&mut self) {
        let Phase::Stopping { listening: true, deadline, exit_code } = self.phase else { return };
        let draining = self.workers.values().any(|w| !matches!(self.board.state(w.slot), SlotState::Stopping | SlotState::Free));
        if draining {
            return;
        }
        self.phase = Phase::Stopping { deadline, exit_code, listening: false };
        if self.may_stop_listening() {
            for l in &self.current.listeners {
                l.stop_listening();
            }
        }
    }

    /// Whether a final stop may stop the sockets listening (see
    /// `stop_listening_when_drained`).
    fn may_stop_listening(&self) -> bool {
        // Not `socket_activated`: that is also true of a master started by
        // USR2, whose sockets, left listening, went on queuing connections
        // nobody accepted through its whole drain, and the close at its
        // exit reset them, requests sent (a POST a balancer cannot retry).
        let passed_in = self.sockets_outlive_us || self.current.cfg.binds.iter().any(|b| matches!(b, BindAddr::Fd(_)));
        !passed_in && !self.other_master_alive()
    }

    /// TTIN: one worker more, as many as the scoreboard holds at most.
    fn raise_target(&mut self) {
        if self.phase == Phase::Running && self.current.target < sys::scoreboard::MAX_SLOTS {
            self.current.target += 1;
            log::info!("Handling signal: ttin; workers now {}", self.current.target);
            self.workers_changed(self.current.target - 1);
        }
    }

    /// TTOU: one worker fewer, never none; `manage_workers` retires the
    /// oldest.
    fn lower_target(&mut self) {
        if self.phase == Phase::Running && self.current.target > 1 {
            self.current.target -= 1;
            log::info!("Handling signal: ttou; workers now {}", self.current.target);
            self.workers_changed(self.current.target + 1);
        }
    }

    /// USR1: the master reopens its error log, each worker its own logs;
    /// the hook process, which writes to the master's, starts again on
    /// the reopened file.
    fn reopen_logs(&mut self) {
        if let Err(e) = crate::logging::reopen_error_log() {
            log::error!("{e}");
        }
        self.signal_workers(Signal::SIGUSR1);
        self.signal_zygotes(Signal::SIGUSR1);
        if let Some(hooks) = &mut self.hooks {
            hooks.restart_when_idle(self.poll.registry());
        }
    }

    /// WINCH, in Gunicorn's meaning when daemonized: stop the workers,
    /// keep the master (HUP or TTIN bring workers back). A process with a
    /// terminal gets WINCH whenever the window is resized.
    fn winch(&mut self) {
        if !self.current.cfg.daemon {
            log::info!("SIGWINCH ignored: not daemonized");
            return;
        }
        log::info!("Handling signal: winch; stopping all workers gracefully");
        if let Some(p) = self.pending.take() {
            self.abandon(p);
        }
        let old = std::mem::replace(&mut self.current.target, 0);
        self.workers_changed(old);
        self.retire_generation(self.current.id, Retirement::ScaledDown);
    }

    /// HUP: read the settings again and start a new generation of workers
    /// beside the old one. The old workers keep serving until every new
    /// one has booted (`check_reload`); if the new ones cannot boot, the
    /// old ones simply stay.
    fn reload(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.counts.reloads += 1;
        if let Some(p) = self.pending.take() {
            log::info!("Reload: a newer reload replaces the one under way");
            self.abandon(p);
        }
        let (cfg, listeners) = match self.load_generation() {
            Ok(loaded) => loaded,
            Err(e) => return self.reload_failed(&e),
        };
        // The new workers inherit the logs as the new settings have them.
        if let Err(e) = crate::logging::configure(&cfg) {
            return self.reload_failed(&e.to_string());
        }
        self.hooks_follow(&cfg);
        self.code_watch_follow(&cfg);
        for l in &listeners {
            if !self.current.listeners.iter().any(|old| Rc::ptr_eq(old, l)) {
                log::info!("Listening at: {} ({})", l.describe(), std::process::id());
            }
        }
        self.board.clear_boot_error();
        let id = self.next_generation;
        self.next_generation += 1;
        let old_target = self.current.target;
        self.pending = Some(PendingReload { generation: Generation::new(id, cfg, listeners), started: Instant::now() });
        // As Gunicorn: the new count, then on_reload, before any new fork.
        let new_target = self.pending.as_ref().map_or(old_target, |p| p.generation.target);
        self.hook("nworkers_changed", None, vec![json!(new_target), json!(old_target)]);
        self.hook("on_reload", None, vec![]);
    }

    /// The settings read again from the directory rwsgi started in (so a
    /// relative `--chdir` or config path means what it meant at start),
    /// and their listeners, sharing the current ones where the address
    /// stays. On failure the working directory is put back.
    fn load_generation(&self) -> Result<(Config, Vec<Rc<Listener>>), String> {
        let here = std::env::current_dir().unwrap_or_else(|_| self.start_dir.clone());
        let loaded = std::env::set_current_dir(&self.start_dir)
            .map_err(|e| format!("cannot return to {}: {e}", self.start_dir.display()))
            .and_then(|()| (self.reloader)().map_err(|e| e.to_string()))
            .inspect(start::log_notices)
            .and_then(|cfg| match &cfg.chdir {
                Some(dir) => std::env::set_current_dir(dir)
                    .map(|()| cfg.clone())
                    .map_err(|e| format!("cannot change directory to {}: {e}", dir.display())),
                None => Ok(cfg),
            })
            .and_then(|cfg| {
                if self.socket_activated {
                    Ok((cfg, self.current.listeners.clone()))
                } else {
                    bind_all(&cfg, &self.current.listeners).map(|l| (cfg, l))
                }
            });
        if loaded.is_err() {
            let _ = std::env::set_current_dir(here);
        }
        loaded
    }

    /// Switch to the pending generation once all its workers have booted;
    /// give up on it when it takes too long.
    fn check_reload(&mut self) {
        let Some(p) = &self.pending else { return };
        let booted = self.serving_workers(p.generation.id);
        if booted >= p.generation.target {
            let p = self.pending.take().expect("checked above");
            let old = std::mem::replace(&mut self.current, p.generation);
            log::info!("Reload: {booted} new workers booted; stopping the old ones gracefully");
            sys::notify_systemd(&format!("READY=1\nSTATUS=reloaded; {booted} workers"));
            self.retire_generation(old.id, Retirement::Reloaded);
            self.remove_unshared_socket_files(&old.listeners);
        } else if p.started.elapsed() > p.generation.cfg.boot_timeout.unwrap_or(RELOAD_LIMIT_UNBOUNDED_BOOT) + RELOAD_SLACK {
            self.reload_failed("new workers did not boot within --boot-timeout");
        }
    }

    /// A reload that cannot go on: say why, give up its generation if it
    /// got that far, and tell systemd the old workers still serve.
    fn reload_failed(&mut self, why: &str) {
        log::error!("Reload failed, old workers keep serving: {why}");
        if let Some(p) = self.pending.take() {
            self.abandon(p);
        }
        sys::notify_systemd("READY=1\nSTATUS=reload failed; old workers serving");
    }

    /// Give up a reload: its workers go (gracefully where they already
    /// serve), its new sockets close.
    fn abandon(&mut self, p: PendingReload) {
        for pid in self.unretired(p.generation.id) {
            let booting = self.workers.get(&pid).is_some_and(|w| self.board.state(w.slot) == SlotState::Booting);
            self.retire(pid, if booting { Signal::SIGINT } else { Signal::SIGTERM }, Retirement::Reloaded);
        }
        self.remove_unshared_socket_files(&p.generation.listeners);
    }

    /// Tell every worker of a generation to stop gracefully.
    fn retire_generation(&mut self, id: u64, why: Retirement) {
        for pid in self.unretired(id) {
            self.retire(pid, Signal::SIGTERM, why);
        }
    }

    /// Tell a worker to stop with `sig`, and give it until the graceful
    /// timeout: `manage_workers` kills it then. From now on it no longer
    /// counts toward its generation's target.
    fn retire(&mut self, pid: Pid, sig: Signal, why: Retirement) {
        let until = Instant::now() + self.current.cfg.graceful_timeout;
        if let Some(w) = self.workers.get_mut(&pid) {
            w.retiring = Some(Retiring { why, until });
            let _ = kill(pid, sig);
        }
    }

    /// The workers of a generation not yet told to stop, oldest first.
    fn unretired(&self, generation: u64) -> Vec<Pid> {
        let mut found: Vec<(u64, Pid)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == generation && w.retiring.is_none())
            .map(|(pid, w)| (w.age, *pid))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, pid)| pid).collect()
    }

    /// Remove the socket files of `listeners` that the current generation
    /// does not share: the current workers still accept on the others.
    fn remove_unshared_socket_files(&self, listeners: &[Rc<Listener>]) {
        for l in listeners {
            if !self.current.listeners.iter().any(|cur| Rc::ptr_eq(cur, l)) {
                l.remove_file();
            }
        }
    }

    /// USR2: start a new master from the binary on disk, handing it the
    /// listening sockets (no bind gap); it runs beside this one until this
    /// one is stopped.
    fn upgrade(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        if self.upgrade_child_alive() || self.upgrade_due {
            log::warn!("Handling signal: usr2; a new master is already running, ignored");
            return;
        }
        log::info!("Handling signal: usr2; starting a new master");
        // As Gunicorn: pre_exec returns before the new master starts.
        self.hook("pre_exec", None, vec![]);
        self.upgrade_due = true;
    }

    /// USR2's new master, on the same sockets.
    fn start_new_master(&mut self) {
        let fds: Vec<(i32, bool)> = self.current.listeners.iter().map(|l| (l.as_raw_fd(), l.owns_file())).collect();
        let program = self.argv.first().cloned().unwrap_or_else(|| "rwsgi".into());
        match sys::spawn_upgraded_master(&program, &self.argv, &self.start_dir, &fds, self.sockets_outlive_us) {
            Ok(pid) => {
                log::info!("New master started (pid: {pid}); stop this one (TERM) once it serves");
                self.upgrade_child = Some(pid);
            }
            Err(e) => log::error!("Upgrade failed: {e}"),
        }
    }

    fn upgrade_child_alive(&self) -> bool {
        self.upgrade_child.is_some_and(|pid| kill(pid, None).is_ok())
    }

    /// The other master of a USR2 pair (the new one, or the old) runs: it
    /// shares the sockets.
    fn other_master_alive(&self) -> bool {
        self.upgrade_child_alive() || self.upgraded_from.is_some_and(|p| kill(p, None).is_ok())
    }

    /// A master started by USR2: once the old master is gone, take over
    /// the pidfile.
    fn check_old_master(&mut self) {
        let Some(old) = self.upgraded_from else { return };
        if kill(old, None).is_ok() && nix::unistd::getppid() == old {
            return;
        }
        self.upgraded_from = None;
        log::info!("The old master ({old}) is gone; this one takes over");
        match open_observers(&self.current.cfg, self.poll.registry()) {
            Ok((metrics, control)) => (self.metrics, self.control) = (metrics, control),
            Err(e) => log::error!("{e}"),
        }
        if let (Some(pidfile), Some(path)) = (self.pidfile.as_mut(), self.current.cfg.pidfile.as_ref()) {
            if let Err(e) = pidfile.move_to(path) {
                log::error!("{e}");
            }
        }
    }

    /// Tell systemd the service is ready once the first workers have booted.
    fn announce_ready(&mut self) {
        if self.announced_ready || self.phase != Phase::Running {
            return;
        }
        let booted = self.serving_workers(self.current.id);
        if booted >= self.current.target {
            self.announced_ready = true;
            sys::notify_systemd(&format!("READY=1\nMAINPID={}\nSTATUS={booted} workers serving", std::process::id()));
        }
    }

    /// Begin stopping: TERM (graceful) or INT (fast) to every worker. A
    /// fast stop overrides a graceful one under way, never the reverse.
    fn stop(&mut self, graceful: bool, exit_code: i32) {
        let limit = if graceful { self.current.cfg.graceful_timeout } else { Duration::from_secs(1) };
        if let Phase::Stopping { deadline, .. } = self.phase {
            if graceful || deadline <= Instant::now() + limit {
                return;
            }
        }
        // A pending generation's workers get the same signal as the rest,
        // but those still importing are not worth waiting for, and the
        // socket files only it made go.
        if let Some(p) = self.pending.take() {
            self.remove_unshared_socket_files(&p.generation.listeners);
            for (pid, w) in &self.workers {
                if w.generation == p.generation.id && self.board.state(w.slot) == SlotState::Booting {
                    let _ = kill(*pid, Signal::SIGINT);
                }
            }
        }
        if !self.upgrade_child_alive() {
            // After USR2 the new master owns the service.
            sys::notify_systemd("STOPPING=1\nSTATUS=stopping");
        }
        if self.may_stop_listening() {
            self.board.set_final_stop();
        }
        self.signal_workers(if graceful { Signal::SIGTERM } else { Signal::SIGINT });
        self.phase = Phase::Stopping { deadline: Instant::now() + limit, exit_code, listening: true };
    }

    fn signal_workers(&self, sig: Signal) {
        for pid in self.workers.keys() {
            let _ = kill(*pid, sig);
        }
    }

    /// Collect every child that has ended and say why it went.
    fn reap_workers(&mut self) {
        while let Some((pid, exit, cpu)) = reap_next() {
            if let Some(dir) = multiproc::directory(&self.current.cfg) {
                multiproc::forget(&dir, pid);
            }
            if self.upgrade_child == Some(pid) {
                self.upgrade_child_exited(pid, exit);
            } else if let Some(entry) = self.workers.remove(&pid) {
                self.counts.cpu_gone += cpu;
                let picture = self.worker_picture(pid, &entry);
                self.worker_exited(pid, entry, exit);
                // Every worker's end, whatever the cause (Gunicorn's
                // prometheus_client recipe counts on it).
                self.hook("child_exit", Some(picture), vec![]);
            } else if self.zygote_exited(pid, exit) {
            } else if let Some(hooks) = &mut self.hooks {
                hooks.reaped(self.poll.registry(), pid, exit);
            }
        }
    }

    fn upgrade_child_exited(&mut self, pid: Pid, exit: Exit) {
        self.upgrade_child = None;
        log::error!("The new master {pid} exited ({exit}); this one serves on");
    }

    /// Free a worker's slot, log its end (one table: [`ExitKind`]), and
    /// act on it: a failed reload, a crash loop, or a stop.
    fn worker_exited(&mut self, pid: Pid, entry: WorkerEntry, exit: Exit) {
        // A boot failure is a worker that never finished booting; the
        // same status from a serving worker (an app calling
        // os._exit(4)) is just an exit.
        let booting = self.board.state(entry.slot) == SlotState::Booting;
        let served = self.board.started_serving(entry.slot);
        // The request it died in, if it was serving one (with request
        // threads, the latest one started: others may have run too).
        let threads = self.generation(entry.generation).cfg.threads;
        let during = self.board.request_running_ms(entry.slot).and(self.board.request_line(entry.slot)).map(|line| {
            if threads > 1 {
                format!("{line} (the latest of its requests)")
            } else {
                line
            }
        });
        self.counts.requests_gone += self.board.requests(entry.slot);
        self.counts.tally_gone += &self.board.tally(entry.slot).read();
        let recycle = self.board.recycle(entry.slot);
        self.board.release(entry.slot);
        let reason = exit.reason().filter(|r| booting || matches!(r, ExitReason::Stopped | ExitReason::Panicked));
        let stopping = self.phase != Phase::Running || entry.retiring.is_some();
        // A booted new worker recycling itself (max-requests, memory)
        // is not a failed reload: it is simply replaced.
        let recycled = reason == Some(ExitReason::Stopped) && !booting;
        if self.is_pending(entry.generation) && !stopping && !recycled {
            *self.counts.exits.entry("boot_failed").or_default() += 1;
            return self.reload_worker_died(pid, reason, exit);
        }
        // Told to go (TTOU, WINCH, a finished or abandoned reload):
        // however it ended, it says nothing about the current generation.
        let retired = match entry.retiring {
            Some(r) => Some(r.why),
            None => (entry.generation != self.current.id).then_some(Retirement::Reloaded),
        };
        if retired.is_none() && self.phase == Phase::Running {
            self.note_lifetime(pid, &entry, Life { booted: !booting, served }, reason, exit);
        }
        let kind = self.classify_exit(retired, reason, exit, entry.aborted.is_some(), recycle);
        *self.counts.exits.entry(kind.cause()).or_default() += 1;
        for (level, text) in kind.log_lines(pid, during.as_deref()) {
            log::log!(level, "{text}");
        }
        if let Some(code) = kind.stops_master() {
            self.stop(false, code);
        }
    }

    /// A worker of the pending generation died before the switch: the new
    /// code or settings do not work, so the old generation stays.
    fn reload_worker_died(&mut self, pid: Pid, reason: Option<ExitReason>, exit: Exit) {
        let why = match (reason, self.board.boot_error()) {
            (Some(ExitReason::AppLoadError), Some(text)) => format!("the application failed to load:\n{text}"),
            _ => format!("new worker {pid} exited ({exit})"),
        };
        self.reload_failed(&why);
    }

    /// Which kind of end this was, for [`ExitKind`]'s table: by the reason
    /// the worker gave or the signal that ended it, whether the master is
    /// stopping, and whether it was aborted as stuck.
    fn classify_exit(
        &mut self,
        retired: Option<Retirement>,
        reason: Option<ExitReason>,
        exit: Exit,
        aborted: bool,
        recycle: Option<Recycle>,
    ) -> ExitKind {
        if let Some(why) = retired {
            return ExitKind::Retired(exit, why);
        }
        let stopping = self.phase != Phase::Running;
        let served = self.board.booted_once();
        match (reason, exit) {
            (Some(ExitReason::AppLoadError), _) if served => {
                // The service has run: a replacement that cannot load the
                // app (code changed on disk) must not take it down. The
                // crash-loop back-off paces the retries.
                let traceback = self.board.boot_error().unwrap_or_default();
                if self.pending.is_none() {
                    // (A pending reload's failure keeps its traceback.)
                    self.board.clear_boot_error();
                }
                ExitKind::AppLoadFailedOthersServe { serving: self.serving_workers(self.current.id), traceback }
            }
            // Printed once: the first failure stops the master, and only
            // the first worker's text is on the board.
            (Some(ExitReason::AppLoadError), _) if stopping => ExitKind::AppLoadFailedWhileStopping,
            (Some(ExitReason::AppLoadError), _) => ExitKind::AppLoadFailed { traceback: self.board.boot_error() },
            (Some(ExitReason::BootError), _) if served => ExitKind::BootFailedOthersServe,
            (Some(ExitReason::BootError), _) => ExitKind::BootFailed,
            (Some(ExitReason::Stopped), _) if stopping => ExitKind::Stopped,
            (Some(ExitReason::Stopped), _) => ExitKind::StoppedOnItsOwn(recycle),
            (Some(ExitReason::Panicked), _) => ExitKind::Panicked,
            (None, Exit::Signal(Signal::SIGKILL)) if stopping => ExitKind::KilledAfterGracefulTimeout,
            (None, Exit::Signal(Signal::SIGABRT | Signal::SIGKILL)) if aborted => ExitKind::KilledAsStuck,
            (None, Exit::Signal(Signal::SIGKILL)) => ExitKind::KilledOutOfMemory,
            (None, Exit::Signal(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) if stopping => ExitKind::Stopped,
            (None, Exit::Signal(sig)) => ExitKind::KilledBy(sig),
            (None, Exit::Status(code)) => ExitKind::Status(code),
        }
    }

    /// Back off when workers die before they serve: one that cannot boot
    /// (or dies as soon as it has) would die the same way again at once,
    /// and forking it in a loop helps nobody. Never for a worker that
    /// served: one bad request that kills its worker (a query of death)
    /// must not slow the replacement of the others, so the back-off is
    /// forgotten instead.
    fn note_lifetime(&mut self, pid: Pid, entry: &WorkerEntry, life: Life, reason: Option<ExitReason>, exit: Exit) {
        let lived = entry.started.elapsed();
        // A worker the master killed as stuck did not crash by itself.
        let signalled = matches!(exit, Exit::Signal(_));
        let crashed = (signalled || reason != Some(ExitReason::Stopped)) && entry.aborted.is_none();
        // However long an import took, failing it again at once is useless.
        let failed_to_start = !life.booted || (!life.served && lived < CRASH_WINDOW);
        if crashed && failed_to_start {
            self.spawn_delay = (self.spawn_delay * 2).clamp(SPAWN_DELAY_MIN, SPAWN_DELAY_MAX);
            self.next_spawn = Instant::now() + self.spawn_delay;
            log::warn!(
                "Worker {pid} died {} ms after it started, before serving; the next one starts in {} ms",
                lived.as_millis(),
                self.spawn_delay.as_millis()
            );
        } else if life.served || lived >= CRASH_WINDOW {
            self.spawn_delay = Duration::ZERO;
            self.next_spawn = Instant::now();
        }
    }

    /// The exit status once stopping is done.
    fn finished(&self) -> Option<i32> {
        match self.phase {
            Phase::Stopping { exit_code, .. } if self.workers.is_empty() => Some(exit_code),
            _ => None,
        }
    }

    /// Kill workers that stopped beating (stuck in the application), took
    /// too long to boot, or ran one request past --request-timeout. SIGABRT
    /// first, so CPython's faulthandler logs every thread's stack; SIGKILL
    /// if the worker is still there after a grace.
    fn murder_stuck_workers(&mut self) {
        let now = Instant::now();
        if self.was_paused(now) {
            return;
        }
        let pids: Vec<Pid> = self.workers.keys().copied().collect();
        for pid in pids {
            let w = &self.workers[&pid];
            if let Some(at) = w.aborted {
                if now.duration_since(at) >= ABORT_GRACE {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            } else if let Some(why) = self.why_stuck(w) {
                log::error!("WORKER TIMEOUT (pid:{pid}): {why}; its Python stack follows");
                let _ = kill(pid, Signal::SIGABRT);
                if let Some(w) = self.workers.get_mut(&pid) {
                    w.aborted = Some(now);
                }
            }
        }
    }

    /// Whether the loop's last turn was so long ago that the process was
    /// paused; if so, every heartbeat starts over.
    fn was_paused(&mut self, now: Instant) -> bool {
        let gap = now.duration_since(self.last_loop);
        self.last_loop = now;
        if gap <= PAUSE_GAP {
            return false;
        }
        // The whole process group was likely stopped (SIGSTOP, a paused
        // container): nobody beat, nobody is stuck.
        log::info!("The master was paused for {} ms; heartbeats start over", gap.as_millis());
        for w in self.workers.values() {
            self.board.beat(w.slot);
        }
        true
    }

    /// Why a worker counts as stuck under its generation's timeouts, if
    /// it does.
    fn why_stuck(&self, w: &WorkerEntry) -> Option<&'static str> {
        let cfg = &self.generation(w.generation).cfg;
        let silent = Duration::from_millis(self.board.silent_for_ms(w.slot));
        match self.board.state(w.slot) {
            SlotState::Free => None,
            SlotState::Booting => cfg.boot_timeout.filter(|t| silent > *t).map(|_| "did not boot in time"),
            SlotState::Idle | SlotState::Busy | SlotState::Stopping => {
                let running = self.board.request_running_ms(w.slot).map(Duration::from_millis);
                if cfg.timeout.is_some_and(|t| silent > t) {
                    Some("no heartbeat")
                } else if cfg.request_timeout.zip(running).is_some_and(|(t, r)| r > t) {
                    Some("request took too long")
                } else {
                    None
                }
            }
        }
    }

    /// Keep each generation at its target; kill stragglers at their
    /// deadline.
    fn manage_workers(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Stopping { deadline, .. } => {
                if now >= deadline {
                    self.signal_workers(Signal::SIGKILL);
                }
            }
            Phase::Running => {
                self.kill_overdue_retirees(now);
                self.spawn_missing_workers(now);
                self.retire_surplus_worker();
            }
        }
        self.send_statsd(now);
    }

    /// Gunicorn's master metrics: `gunicorn.workers` when the count
    /// changed, and `gunicorn.backlog` once a second when asked for.
    fn send_statsd(&mut self, now: Instant) {
        if !statsd::enabled() {
            return;
        }
        let count = self.workers.len();
        if self.counts.workers_sent != Some(count) {
            self.counts.workers_sent = Some(count);
            statsd::gauge("gunicorn.workers", count as u64);
        }
        if self.current.cfg.enable_backlog_metric && self.counts.backlog_sent.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            self.counts.backlog_sent = Some(now);
            let backlog: u64 = self.current.listeners.iter().filter_map(|l| sys::listen_queue(l.as_raw_fd())).map(u64::from).sum();
            statsd::histogram("gunicorn.backlog", backlog);
        }
    }

    /// Retiring workers still there at their deadline are killed.
    fn kill_overdue_retirees(&self, now: Instant) {
        for (pid, w) in &self.workers {
            if w.retiring.is_some_and(|r| now >= r.until) {
                let _ = kill(*pid, Signal::SIGKILL);
            }
        }
    }

    /// Fork what the current and the pending generation lack, unless the
    /// crash-loop back-off says to wait.
    fn spawn_missing_workers(&mut self, now: Instant) {
        let mut wanted = vec![(self.current.id, self.current.target)];
        if let Some(p) = &self.pending {
            wanted.push((p.generation.id, p.generation.target));
        }
        for (id, target) in wanted {
            if now < self.next_spawn {
                break;
            }
            let mut missing = target.saturating_sub(self.active_workers(id));
            while missing > 0 && self.zygote_ready(id) && self.hooks_allow_fork() && self.spawn_worker(id) {
                missing -= 1;
            }
        }
    }

    /// Whether the hooks called so far have returned, pre_fork included
    /// for the next worker (called here when it was not yet): Gunicorn's
    /// master forks only after them.
    fn hooks_allow_fork(&mut self) -> bool {
        let Some(hooks) = &self.hooks else { return true };
        if hooks.busy() {
            return false;
        }
        if hooks.defines("pre_fork") && self.pre_forked != Some(self.next_age) {
            self.pre_forked = Some(self.next_age);
            let booting = WorkerPicture { pid: None, age: self.next_age, ..WorkerPicture::default() };
            self.hook("pre_fork", Some(booting), vec![]);
            return false;
        }
        true
    }

    /// Above the current generation's target (TTOU), the oldest worker
    /// goes, one per turn.
    fn retire_surplus_worker(&mut self) {
        if self.active_workers(self.current.id) <= self.current.target {
            return;
        }
        if let Some(&oldest) = self.unretired(self.current.id).first() {
            self.retire(oldest, Signal::SIGTERM, Retirement::ScaledDown);
        }
    }

    /// Workers of a generation that have booted and serve (not retiring).
    fn serving_workers(&self, generation: u64) -> usize {
        self.workers
            .values()
            .filter(|w| w.generation == generation && w.retiring.is_none())
            .filter(|w| matches!(self.board.state(w.slot), SlotState::Idle | SlotState::Busy))
            .count()
    }

    /// Workers of a generation counted toward its target (not retiring).
    /// A worker stopping on its own (max-requests, memory) no longer
    /// counts: its replacement boots while it drains.
    fn active_workers(&self, generation: u64) -> usize {
        self.workers
            .values()
            .filter(|w| w.generation == generation && w.retiring.is_none())
            .filter(|w| self.board.state(w.slot) != SlotState::Stopping)
            .count()
    }

    fn is_pending(&self, generation: u64) -> bool {
        self.pending.as_ref().is_some_and(|p| p.generation.id == generation)
    }

    /// The generation whose settings a worker of generation `id` follows:
    /// the pending one if it is that, else the current one (whose
    /// timeouts also judge the retiring workers of older generations).
    fn generation(&self, id: u64) -> &Generation {
        match &self.pending {
            Some(p) if p.generation.id == id => &p.generation,
            _ => &self.current,
        }
    }

    fn generation_mut(&mut self, id: u64) -> &mut Generation {
        match &mut self.pending {
            Some(p) if p.generation.id == id => &mut p.generation,
            _ => &mut self.current,
        }
    }

    /// A new worker of `generation` in a free scoreboard slot, forked by
    /// its zygote (or, with `RWSGI_NO_ZYGOTE`, here); false when every slot
    /// is taken or the fork failed.
    // Forking is the master's job (the zygotes' too, in `zygote`): only
    // they can vouch for the contract (one thread).
    #[allow(unsafe_code)]
    fn spawn_worker(&mut self, generation: u64) -> bool {
        let used: Vec<usize> = self.workers.values().map(|w| w.slot).collect();
        let Some(slot) = (0..sys::scoreboard::MAX_SLOTS).find(|s| !used.contains(s)) else {
            return false;
        };
        self.board.assign(slot, 0);
        if zygote::uses_zygote() {
            return match self.spawn_from_zygote(generation, slot) {
                Some(pid) => self.adopt(pid, slot, generation),
                None => {
                    self.board.release(slot);
                    false
                }
            };
        }
        let master = nix::unistd::getpid();
        // SAFETY: the master never starts a thread: signal handlers only
        // write to signal-hook's pipe, the loop runs on the thread that
        // runs main, and Python (whose threads could outlive a call) is
        // never started here. The process is single-threaded, as fork
        // requires.
        match unsafe { sys::fork() } {
            Ok(ForkResult::Child) => {
                let gen = self.generation(generation);
                let age = self.next_age;
                let reload_dir = self.code_watch.as_ref().map(CodeWatch::report_dir);
                let start = worker::Start::Fresh;
                let spec =
                    WorkerSpec {
                        cfg: &gen.cfg,
                        listeners: &gen.listeners,
                        board: &self.board,
                        slot,
                        master,
                        age,
                        reload_dir,
                        start,
                        handoff: gen.handoff.as_ref(),
                    };
                worker::run(spec)
            }
            Ok(ForkResult::Parent { child }) => self.adopt(child, slot, generation),
            Err(e) => {
                log::error!("fork failed: {e}");
                self.board.release(slot);
                false
            }
        }
    }
}

impl Master {
    /// A new worker of `generation` in `slot`, forked here or by the
    /// zygote: in the table from now on.
    fn adopt(&mut self, pid: Pid, slot: usize, generation: u64) -> bool {
        self.board.set_pid(slot, pid.as_raw());
        let entry = WorkerEntry { slot, age: self.next_age, generation, retiring: None, aborted: None, started: Instant::now() };
        self.workers.insert(pid, entry);
        self.next_age += 1;
        *self.counts.slot_workers.entry(slot).or_default() += 1;
        true
    }
}

/// `--metrics-bind`'s listener and the control socket, as `cfg` asks.
fn open_observers(cfg: &Config, registry: &mio::Registry) -> Result<(Option<metrics::MetricsServer>, Option<control::ControlServer>), String> {
    let metrics = cfg.metrics_bind.as_deref().map(|a| metrics::MetricsServer::bind(a, registry)).transpose()?;
    let control = match (&cfg.control_socket, cfg.control_socket_disable) {
        (Some(path), false) => Some(control::ControlServer::bind(path, cfg.control_socket_mode, registry)?),
        _ => None,
    };
    Ok((metrics, control))
}

/// The old master's pid when USR2 started this one. Taken once: the
/// variable is removed so workers and later upgrades do not see it.
fn take_upgraded_from() -> Option<Pid> {
    let pid = std::env::var("RWSGI_UPGRADE_FROM").ok().and_then(|p| p.parse::<i32>().ok()).map(Pid::from_raw);
    std::env::remove_var("RWSGI_UPGRADE_FROM");
    pid
}

/// The listening sockets: those the old master (USR2) or systemd passed,
/// else `cfg`'s addresses bound now; whether they were passed, and
/// whether they outlive rwsgi (systemd's, directly or through the old
/// master).
fn open_listeners(cfg: &Config) -> Result<(Vec<Rc<Listener>>, bool, bool), String> {
    let mut inherited = sys::upgrade_listen_fds();
    let mut outlive_us = sys::upgrade_fds_outlive_us();
    if inherited.is_empty() {
        // systemd keeps the socket files it made.
        inherited = sys::systemd_listen_fds().into_iter().map(|fd| (fd, false)).collect();
        outlive_us = !inherited.is_empty();
    }
    if inherited.is_empty() {
        return Ok((bind_all(cfg, &[])?, false, false));
    }
    let listeners = inherited
        .into_iter()
        .map(|(fd, owns)| Listener::adopt(fd, owns).map(Rc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot use the sockets systemd passed: {e}"))?;
    Ok((listeners, true, outlive_us))
}

/// A master started by USR2 writes PIDFILE.2 while the old master holds
/// PIDFILE, and takes PIDFILE over when the old one exits.
fn write_pidfile(cfg: &Config, upgraded_from: Option<Pid>) -> Result<Option<pidfile::Pidfile>, String> {
    let Some(path) = &cfg.pidfile else { return Ok(None) };
    let path = if upgraded_from.is_some() { pidfile::upgrade_path(path) } else { path.clone() };
    pidfile::Pidfile::create(&path).map(Some)
}

/// Signal handlers that only write to a pipe, which the loop's poll
/// watches.
fn watch_signals(poll: &Poll) -> Result<Signals, String> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    Ok(signals)
}

/// Bind `cfg`'s addresses, sharing the sockets of `existing` that are
/// bound to the same address, so a reload never rebinds a socket it keeps
/// (no bind gap, no refused connection).
fn bind_all(cfg: &Config, existing: &[Rc<Listener>]) -> Result<Vec<Rc<Listener>>, String> {
    let mut out = Vec::new();
    for addr in &cfg.binds {
        let listener = match existing.iter().find(|l| l.bound_to(addr)) {
            Some(l) => Rc::clone(l),
            None => {
                let l = Listener::bind(addr, cfg.backlog, cfg.reuse_port).map_err(|e| format!("cannot bind {addr}: {e}"))?;
                if let (BindAddr::Unix(path), true) = (addr, cfg.user.is_some() || cfg.group.is_some()) {
                    // The workers' user owns the socket file, as in Gunicorn.
                    let uid = cfg.user.map(nix::unistd::Uid::from_raw);
                    let gid = cfg.group.map(nix::unistd::Gid::from_raw);
                    nix::unistd::chown(path, uid, gid).map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
                }
                Rc::new(l)
            }
        };
        out.push(listener);
    }
    Ok(out)
}

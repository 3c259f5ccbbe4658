//! The master's side of the master-side server hooks: it starts the hook
//! process (`crate::hooks::process`) when the config file defines any of
//! them, sends it one JSON call per line on a socket in the master's poll,
//! and reads the answers, which come in order. A hook that raises is
//! logged with its traceback; one that outlasts `--hook-timeout` is logged
//! and its process killed (another starts for the next call). The master
//! never waits on a hook inside its loop: it holds back only what Gunicorn
//! runs after the hook (a fork after pre_fork, USR2's new master after
//! pre_exec) until [`HookProcess::busy`] says the calls made so far are
//! answered. Start-up and exit, where there is nothing to supervise yet or
//! any more, wait with [`HookProcess::wait_idle`].

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::exit::Exit;
use crate::config::Config;
use crate::hooks::{self, ServerPicture, WorkerPicture};

/// The poll token of the hook process's socket.
pub const TOKEN: Token = Token(1);

/// A call sent and not answered yet.
struct Pending {
    id: u64,
    hook: &'static str,
    /// When the process took it up: when it was sent, or when the call
    /// before it was answered.
    started: Instant,
    /// The call as sent, to send again to a new process should this one
    /// be lost on an earlier call.
    line: Vec<u8>,
}

/// The hook process while it runs.
struct Running {
    pid: Pid,
    stream: mio::net::UnixStream,
    /// Bytes of calls the socket has not taken yet.
    unsent: Vec<u8>,
    /// Bytes of answers read, up to an incomplete line.
    read: Vec<u8>,
    pending: VecDeque<Pending>,
}

/// The master-side hooks of the current settings, and their process.
pub struct HookProcess {
    /// The master-side hooks the config file defines.
    defined: Vec<String>,
    /// The config file, and where its imports come from.
    target: String,
    virtualenv: String,
    pythonpath: String,
    env: Vec<(String, String)>,
    cfg: serde_json::Map<String, Value>,
    timeout: Duration,
    running: Option<Running>,
    next_id: u64,
}

impl HookProcess {
    /// The hooks `cfg`'s config file defines for the master; `None` when
    /// it defines none (no process is started then).
    pub fn new(cfg: &Config) -> Option<HookProcess> {
        let mut hooks = HookProcess {
            defined: Vec::new(),
            target: String::new(),
            virtualenv: String::new(),
            pythonpath: String::new(),
            env: Vec::new(),
            cfg: serde_json::Map::new(),
            timeout: cfg.hook_timeout,
            running: None,
            next_id: 0,
        };
        hooks.take_settings(cfg);
        hooks::defines_any(cfg, hooks::MASTER_SIDE).then_some(hooks)
    }

    /// Take the hooks and settings of `cfg` (HUP): the process loads the
    /// config file again before the next call.
    pub fn follow(&mut self, registry: &Registry, cfg: &Config) {
        self.take_settings(cfg);
        if let Some(running) = &mut self.running {
            queue(running, &mut self.next_id, "__reload__", json!({"call": "__reload__"}));
            self.flush(registry);
        }
    }

    /// What the calls from now on are made with.
    fn take_settings(&mut self, cfg: &Config) {
        self.defined = cfg.hooks.iter().filter(|h| hooks::MASTER_SIDE.contains(&h.as_str())).cloned().collect();
        self.target = cfg.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        self.virtualenv = cfg.virtualenv.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        self.pythonpath = cfg.pythonpath.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",");
        self.env = cfg.raw_env.clone();
        self.cfg = cfg.to_json();
        self.timeout = cfg.hook_timeout;
    }

    /// Whether the config file defines `hook`.
    pub fn defines(&self, hook: &str) -> bool {
        self.defined.iter().any(|h| h == hook)
    }

    /// Run `hook` (when the config file defines it) with `server`, then
    /// `worker` when given, then `args`; the answer comes later.
    pub fn call(&mut self, registry: &Registry, hook: &'static str, server: &ServerPicture, worker: Option<WorkerPicture>, args: Vec<Value>) {
        if !self.defines(hook) {
            return;
        }
        if self.running.is_none() {
            match self.spawn(registry) {
                Ok(running) => self.running = Some(running),
                Err(e) => return log::error!("cannot start the hook process for {hook}: {e}"),
            }
        }
        let call = json!({
            "call": hook, "cfg": self.cfg, "server": server.to_json(),
            "worker": worker.map(WorkerPicture::to_json), "args": args,
        });
        let Some(running) = &mut self.running else { return };
        queue(running, &mut self.next_id, hook, call);
        self.flush(registry);
    }

    /// Whether calls are waiting for their answers.
    pub fn busy(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.pending.is_empty())
    }

    /// The socket is ready: send what waits, read what came.
    pub fn on_ready(&mut self, registry: &Registry) {
        self.flush(registry);
        let Some(running) = &mut self.running else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match running.stream.read(&mut chunk) {
                Ok(0) => return self.lost(registry, Loss::Closed),
                Ok(n) => running.read.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.lost(registry, Loss::Io(e)),
            }
        }
        while let Some(end) = running.read.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = running.read.drain(..=end).collect();
            let Some(call) = running.pending.pop_front() else { continue };
            answered(&call, &line);
            // The next call's time starts now: it waited its turn.
            if let Some(next) = running.pending.front_mut() {
                next.started = Instant::now();
            }
        }
    }

    /// A call unanswered after `--hook-timeout`: said, and the process
    /// killed, so the calls after it can go on in a new one.
    pub fn check_timeout(&mut self, registry: &Registry) {
        let Some(running) = &self.running else { return };
        let Some(oldest) = running.pending.front() else { return };
        if oldest.started.elapsed() >= self.timeout {
            self.lost(registry, Loss::TimedOut);
        }
    }

    /// Wait (blocking, at start-up and exit only) until every call is
    /// answered, each within `--hook-timeout`.
    pub fn wait_idle(&mut self, registry: &Registry) {
        while let Some(running) = &self.running {
            let Some(oldest) = running.pending.front() else { return };
            let left = self.timeout.saturating_sub(oldest.started.elapsed());
            if !left.is_zero() {
                let _ = crate::sys::wait_readable(&running.stream, left.min(Duration::from_millis(100)));
            }
            self.on_ready(registry);
            self.check_timeout(registry);
        }
    }

    /// Whether `pid` was the hook process (reaped by the master's loop).
    pub fn reaped(&mut self, registry: &Registry, pid: Pid, exit: Exit) -> bool {
        if self.running.as_ref().is_none_or(|r| r.pid != pid) {
            return false;
        }
        self.lost(registry, Loss::Exited(exit));
        true
    }

    /// Let the process go now if it has no call to finish (the next call
    /// starts a new one: on a reopened error log); a busy one stays.
    pub fn restart_when_idle(&mut self, registry: &Registry) {
        if !self.busy() {
            self.stop(registry);
        }
    }

    /// End the process: its socket closes, and it ends (killed if a call
    /// is still running).
    pub fn stop(&mut self, registry: &Registry) {
        if let Some(mut running) = self.running.take() {
            let _ = registry.deregister(&mut running.stream);
            if !running.pending.is_empty() {
                let _ = kill(running.pid, Signal::SIGKILL);
            }
        }
    }

    /// The process is gone or given up on: the call it was running is
    /// lost, and the calls queued behind it go to a new process (which
    /// loads the config file afresh).
    fn lost(&mut self, registry: &Registry, loss: Loss) {
        let Some(mut running) = self.running.take() else { return };
        let pid = running.pid;
        let culprit = running.pending.pop_front().map(|p| p.hook).filter(|h| !h.starts_with("__"));
        // Reaped already, its pid may be another process's now.
        let reaped = matches!(loss, Loss::Exited(_));
        match (loss, culprit) {
            (Loss::TimedOut, Some(hook)) => log::error!(
                "The hook process {pid} was stopped: its {hook} hook did not return within {} s (--hook-timeout)",
                self.timeout.as_secs()
            ),
            (loss, Some(hook)) => log::error!("The hook process {pid} {loss} in its {hook} hook"),
            (loss, None) => log::warn!("The hook process {pid} {loss}"),
        }
        let _ = registry.deregister(&mut running.stream);
        if !reaped {
            let _ = kill(running.pid, Signal::SIGKILL);
        }
        let queued: Vec<Pending> = running.pending.into_iter().filter(|p| !p.hook.starts_with("__")).collect();
        if queued.is_empty() {
            return;
        }
        match self.spawn(registry) {
            Ok(mut fresh) => {
                for mut call in queued {
                    call.started = Instant::now();
                    fresh.unsent.extend_from_slice(&call.line);
                    fresh.pending.push_back(call);
                }
                self.running = Some(fresh);
                self.flush(registry);
            }
            Err(e) => {
                let hooks: Vec<&str> = queued.iter().map(|p| p.hook).collect();
                log::error!("cannot start the hook process again: {e}; not run: {}", hooks.join(", "));
            }
        }
    }

    /// Start the hook process on one end of a socket pair.
    fn spawn(&mut self, registry: &Registry) -> std::io::Result<Running> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let log = crate::logging::error_log_file()?;
        let child = crate::sys::own_binary()?
            .args([hooks::process::FLAG, &self.target, &self.virtualenv, &self.pythonpath])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // Out of the terminal's process group: it stops when the
            // master closes its socket, not on a Ctrl-C meant for the
            // server.
            .process_group(0)
            .spawn()?;
        ours.set_nonblocking(true)?;
        let mut stream = mio::net::UnixStream::from_std(ours);
        registry.register(&mut stream, TOKEN, Interest::READABLE)?;
        let pid = Pid::from_raw(child.id() as i32);
        log::info!("Hook process started with pid: {pid}");
        Ok(Running { pid, stream, unsent: Vec::new(), read: Vec::new(), pending: VecDeque::new() })
    }

    /// Write what the socket takes; ask to hear when it takes more.
    fn flush(&mut self, registry: &Registry) {
        let Some(running) = &mut self.running else { return };
        while !running.unsent.is_empty() {
            match running.stream.write(&running.unsent) {
                Ok(n) => {
                    running.unsent.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.lost(registry, Loss::Io(e)),
            }
        }
        let interest = if running.unsent.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
        let _ = registry.reregister(&mut running.stream, TOKEN, interest);
    }
}

/// How the hook process was lost.
enum Loss {
    /// A call outlasted `--hook-timeout` (the process is killed).
    TimedOut,
    /// It ended.
    Exited(Exit),
    /// It closed its socket.
    Closed,
    /// Its socket failed.
    Io(std::io::Error),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::TimedOut => write!(f, "was stopped: a call outlasted --hook-timeout"),
            Loss::Exited(exit) => write!(f, "exited ({exit})"),
            Loss::Closed => write!(f, "closed its socket"),
            Loss::Io(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Put `call` on `running`'s line, numbered.
fn queue(running: &mut Running, next_id: &mut u64, hook: &'static str, mut call: Value) {
    *next_id += 1;
    call["id"] = json!(*next_id);
    let mut line = call.to_string().into_bytes();
    line.push(b'\n');
    running.unsent.extend_from_slice(&line);
    running.pending.push_back(Pending { id: *next_id, hook, started: Instant::now(), line });
}

/// Log what went wrong in an answered call, if anything did.
fn answered(call: &Pending, line: &[u8]) {
    let answer: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    if answer.get("id").and_then(Value::as_u64) != Some(call.id) {
        return log::error!("The hook process answered out of turn: {}", String::from_utf8_lossy(line).trim_end());
    }
    if let Some(traceback) = answer.get("error").and_then(Value::as_str) {
        match call.hook {
            "__reload__" => log::error!("The hook process could not load the config file again; it keeps the hooks it had:\n{}", traceback.trim_end()),
            hook => log::error!("The {hook} hook raised:\n{}", traceback.trim_end()),
        }
    }
}


/// Gunicorn's first two master-side hooks, before the sockets are bound:
/// nworkers_changed(N, None), then on_starting, waited for.
pub fn hooks_before_start(cfg: &Config, registry: &Registry) -> Option<HookProcess> {
    let mut hooks = HookProcess::new(cfg)?;
    let server = ServerPicture { pid: std::process::id() as i32, num_workers: cfg.workers, reexec_pid: 0, workers: Vec::new() };
    hooks.call(registry, "nworkers_changed", &server, None, vec![json!(cfg.workers), Value::Null]);
    hooks.call(registry, "on_starting", &server, None, vec![]);
    hooks.wait_idle(registry);
    Some(hooks)
}

impl super::Master {
    /// Call a master-side hook, if the config file defines it.
    pub(super) fn hook(&mut self, name: &'static str, worker: Option<WorkerPicture>, args: Vec<Value>) {
        if self.hooks.as_ref().is_none_or(|h| !h.defines(name)) {
            return;
        }
        let server = self.server_picture();
        if let Some(hooks) = &mut self.hooks {
            hooks.call(self.poll.registry(), name, &server, worker, args);
        }
    }

    /// The master as a hook sees it.
    fn server_picture(&self) -> ServerPicture {
        ServerPicture {
            pid: std::process::id() as i32,
            num_workers: self.current.target,
            reexec_pid: self.upgrade_child.map_or(0, Pid::as_raw),
            workers: self.workers.iter().map(|(pid, w)| self.worker_picture(*pid, w)).collect(),
        }
    }

    /// A worker as a hook sees it.
    pub(super) fn worker_picture(&self, pid: Pid, w: &super::WorkerEntry) -> WorkerPicture {
        let state = self.board.state(w.slot);
        WorkerPicture {
            pid: Some(pid.as_raw()),
            age: w.age,
            booted: !matches!(state, crate::sys::SlotState::Booting),
            aborted: w.aborted.is_some(),
            nr: self.board.requests(w.slot),
        }
    }

    /// nworkers_changed(server, now, before), when the count moved.
    pub(super) fn workers_changed(&mut self, before: usize) {
        let now = self.current.target;
        self.hook("nworkers_changed", None, vec![json!(now), json!(before)]);
    }

    /// HUP: the hooks of the settings read again (a process starts if the
    /// config file defines master-side hooks now, and none ran before).
    pub(super) fn hooks_follow(&mut self, cfg: &Config) {
        match &mut self.hooks {
            Some(hooks) => hooks.follow(self.poll.registry(), cfg),
            None => self.hooks = HookProcess::new(cfg),
        }
    }

    /// The last of the hooks: on_exit, after every child_exit, waited for;
    /// then the hook process ends.
    pub(super) fn hooks_at_exit(&mut self) {
        self.hook("on_exit", None, vec![]);
        if let Some(hooks) = &mut self.hooks {
            hooks.wait_idle(self.poll.registry());
            hooks.stop(self.poll.registry());
        }
    }
}

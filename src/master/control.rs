//! `--control-socket PATH`: Gunicorn's control socket, in its protocol
//! (a 4-byte big-endian length, then a JSON request `{"id", "command",
//! "args"}`; the answer `{"id", "status": "ok", "data"}` or `{"id",
//! "status": "error", "error"}`), so Gunicorn's `gunicornc` and rwsgi's
//! `rwsgi ctl` both drive it: show workers, stats, listeners, config;
//! add, remove or stop workers; reload, reopen the logs, shut down.
//!
//! Served from the master's poll, never blocking it; the socket file is
//! made with `--control-socket-mode` (0600 by default), and a client of
//! another user (but root) is refused on its peer credentials.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde_json::{json, Value};

use super::view::WorkerView;
use crate::sys::tally::STATUS_CLASSES;

/// The poll token of the control socket; its clients follow it.
pub const LISTENER: Token = Token(1 << 40);
/// Clients at once; past it the oldest goes.
const MAX_CLIENTS: usize = 8;
/// The longest a client may stay connected.
const CLIENT_TIME: Duration = Duration::from_secs(60);
/// The largest request accepted.
const MAX_MESSAGE: usize = 64 * 1024;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `show workers`, `show stats`, `show listeners`, `show config`, `show all`.
    Show(&'static str),
    /// `worker add [N]`.
    AddWorkers(usize),
    /// `worker remove [N]`.
    RemoveWorkers(usize),
    /// `worker kill PID`: a graceful stop of one worker.
    KillWorker(i32),
    /// `reload`.
    Reload,
    /// `reopen`.
    Reopen,
    /// `shutdown [graceful|quick]`.
    Shutdown { quick: bool },
    /// `help`.
    Help,
}

impl Request {
    /// Read `command` (and `args`) as Gunicorn's control server does.
    pub fn parse(command: &str, args: &[Value]) -> Result<Request, String> {
        let mut words: Vec<String> = command.split_whitespace().map(str::to_lowercase).collect();
        words.extend(args.iter().map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string)));
        let count = |w: Option<&String>| -> Result<usize, String> {
            w.map_or(Ok(1), |n| n.parse::<usize>().map(|n| n.max(1)).map_err(|_| format!("not a count: {n}")))
        };
        let word = |i: usize| words.get(i).map(String::as_str);
        Ok(match (word(0), word(1)) {
            (Some("show"), Some(what @ ("workers" | "stats" | "listeners" | "config" | "all"))) => {
                Request::Show(["workers", "stats", "listeners", "config", "all"].into_iter().find(|w| *w == what).unwrap_or("all"))
            }
            (Some("worker"), Some("add")) => Request::AddWorkers(count(words.get(2))?),
            (Some("worker"), Some("remove")) => Request::RemoveWorkers(count(words.get(2))?),
            (Some("worker"), Some("kill")) => {
                let pid = word(2).ok_or("worker kill needs a PID")?;
                Request::KillWorker(pid.parse().map_err(|_| format!("not a pid: {pid}"))?)
            }
            (Some("reload"), None) => Request::Reload,
            (Some("reopen"), None) => Request::Reopen,
            (Some("shutdown"), None | Some("graceful")) => Request::Shutdown { quick: false },
            (Some("shutdown"), Some("quick")) => Request::Shutdown { quick: true },
            (Some("help"), None) => Request::Help,
            _ => return Err(format!("Unknown command: {command}")),
        })
    }
}

/// The commands, as `help` lists them.
pub fn help() -> Value {
    json!({"commands": {
        "show all": "Show the master and its workers",
        "show workers": "List the workers with their state",
        "show config": "Show the settings in force",
        "show stats": "Show server statistics",
        "show listeners": "Show bound sockets",
        "worker add [N]": "Spawn N workers (default 1)",
        "worker remove [N]": "Remove N workers (default 1)",
        "worker kill <PID>": "Gracefully stop one worker",
        "reload": "Graceful reload (HUP)",
        "reopen": "Reopen log files (USR1)",
        "shutdown [graceful|quick]": "Shut the server down (TERM/INT)",
        "help": "Show this help message",
    }})
}

struct Client {
    stream: UnixStream,
    since: Instant,
    read: Vec<u8>,
    unsent: Vec<u8>,
}

/// The control socket and its clients.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: HashMap<Token, Client>,
    next: usize,
}

impl ControlServer {
    /// Make the socket at `path` with `mode`, replacing a stale file.
    pub fn bind(path: &Path, mode: u32, registry: &Registry) -> Result<ControlServer, String> {
        use std::os::unix::fs::PermissionsExt;
        let failed = |e: std::io::Error| format!("--control-socket {}: {e}", path.display());
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("--control-socket {}: another server answers there", path.display()));
        }
        let _ = std::fs::remove_file(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut listener = UnixListener::bind(path).map_err(failed)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
        registry.register(&mut listener, LISTENER, Interest::READABLE).map_err(failed)?;
        log::info!("Control socket at: {} (mode {mode:o})", path.display());
        Ok(ControlServer { listener, path: path.to_path_buf(), clients: HashMap::new(), next: LISTENER.0 + 1 })
    }

    /// Whether `token` is this server's.
    pub fn owns(&self, token: Token) -> bool {
        token == LISTENER || self.clients.contains_key(&token)
    }

    /// The poll said `token` is ready. Complete requests are answered by
    /// `run`.
    pub fn on_event(&mut self, registry: &Registry, token: Token, run: &mut dyn FnMut(Request) -> Result<Value, String>) {
        if token == LISTENER {
            return self.accept(registry);
        }
        let Some(client) = self.clients.get_mut(&token) else { return };
        let open = read_requests(client, run) && flush(client);
        let interest = if client.unsent.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
        if open {
            let _ = registry.reregister(&mut client.stream, token, interest);
        } else {
            self.close(registry, token);
        }
    }

    /// Let go of clients connected past [`CLIENT_TIME`].
    pub fn expire(&mut self, registry: &Registry) {
        let late: Vec<Token> = self.clients.iter().filter(|(_, c)| c.since.elapsed() > CLIENT_TIME).map(|(t, _)| *t).collect();
        for token in late {
            self.close(registry, token);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            if !same_user(&stream) {
                log::warn!("Control socket: a client of another user was refused");
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS {
                if let Some(oldest) = self.clients.iter().min_by_key(|(_, c)| c.since).map(|(t, _)| *t) {
                    self.close(registry, oldest);
                }
            }
            let token = Token(self.next);
            self.next += 1;
            if registry.register(&mut stream, token, Interest::READABLE).is_ok() {
                self.clients.insert(token, Client { stream, since: Instant::now(), read: Vec::new(), unsent: Vec::new() });
            }
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut client) = self.clients.remove(&token) {
            let _ = registry.deregister(&mut client.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the peer is this process's user, or root.
fn same_user(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    }
}

/// Read what came and answer every whole request in it; false when the
/// client is gone or broke the framing.
fn read_requests(client: &mut Client, run: &mut dyn FnMut(Request) -> Result<Value, String>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match client.stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => client.read.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    while client.read.len() >= 4 {
        let len = u32::from_be_bytes([client.read[0], client.read[1], client.read[2], client.read[3]]) as usize;
        if len > MAX_MESSAGE {
            return false;
        }
        if client.read.len() < 4 + len {
            break;
        }
        let message: Vec<u8> = client.read.drain(..4 + len).skip(4).collect();
        let answer = answer(&message, run);
        let payload = answer.to_string().into_bytes();
        client.unsent.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        client.unsent.extend_from_slice(&payload);
    }
    true
}

/// The answer to one request.
fn answer(message: &[u8], run: &mut dyn FnMut(Request) -> Result<Value, String>) -> Value {
    let request: Value = serde_json::from_slice(message).unwrap_or(Value::Null);
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let command = request.get("command").and_then(Value::as_str).unwrap_or("").trim();
    let args = request.get("args").and_then(Value::as_array).cloned().unwrap_or_default();
    let result = if command.is_empty() { Err("Empty command".to_string()) } else { Request::parse(command, &args).and_then(&mut *run) };
    match result {
        Ok(data) => json!({"id": id, "status": "ok", "data": data}),
        Err(error) => json!({"id": id, "status": "error", "error": error}),
    }
}

/// Write what the socket takes; false when the client is gone.
fn flush(client: &mut Client) -> bool {
    while !client.unsent.is_empty() {
        match client.stream.write(&client.unsent) {
            Ok(n) => {
                client.unsent.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

impl super::Master {
    /// `--control-socket`: accept, read and answer its clients.
    pub(super) fn serve_control(&mut self, events: &mio::Events) {
        let Some(mut server) = self.control.take() else { return };
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).filter(|t| server.owns(*t)).collect();
        // (A registry of its own: a request may need the master whole.)
        if let (false, Ok(registry)) = (tokens.is_empty(), self.poll.registry().try_clone()) {
            for token in tokens {
                server.on_event(&registry, token, &mut |request| self.control_request(request));
            }
        }
        server.expire(self.poll.registry());
        self.control = Some(server);
    }

    /// Carry out one control request.
    fn control_request(&mut self, request: Request) -> Result<Value, String> {
        log::info!("Control socket: {request:?}");
        Ok(match request {
            Request::Show(what) => self.control_show(what),
            Request::AddWorkers(n) => self.control_set_target(self.current.target.saturating_add(n)),
            Request::RemoveWorkers(n) => self.control_set_target(self.current.target.saturating_sub(n)),
            Request::KillWorker(pid) => {
                let pid = nix::unistd::Pid::from_raw(pid);
                if !self.workers.contains_key(&pid) {
                    return Ok(json!({"success": false, "error": format!("Worker {pid} not found")}));
                }
                match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                    Ok(()) => json!({"success": true, "killed": pid.as_raw()}),
                    Err(e) => json!({"success": false, "error": e.to_string()}),
                }
            }
            Request::Reload => {
                crate::sys::notify_systemd("RELOADING=1\nSTATUS=reloading");
                self.reload();
                json!({"status": "reloading"})
            }
            Request::Reopen => {
                self.reopen_logs();
                json!({"status": "reopening"})
            }
            Request::Shutdown { quick } => {
                self.stop(!quick, 0);
                json!({"status": "shutting_down", "mode": if quick { "quick" } else { "graceful" }})
            }
            Request::Help => help(),
        })
    }

    /// Workers wanted, between 1 and the scoreboard's size, as TTIN and
    /// TTOU set it.
    fn control_set_target(&mut self, wanted: usize) -> Value {
        let previous = self.current.target;
        if self.phase == super::Phase::Running {
            self.current.target = wanted.clamp(1, crate::sys::scoreboard::MAX_SLOTS);
            if self.current.target != previous {
                self.workers_changed(previous);
            }
        }
        let total = self.current.target;
        json!({"previous": previous, "total": total, "added": total.saturating_sub(previous), "removed": previous.saturating_sub(total)})
    }

    /// `show ...`.
    fn control_show(&self, what: &str) -> Value {
        let view = self.view();
        let workers: Vec<Value> = view.workers.iter().map(worker_json).collect();
        let count = workers.len();
        match what {
            "workers" => json!({"workers": workers, "count": count}),
            "stats" => {
                let t = &view.totals;
                let by_class: serde_json::Map<String, Value> =
                    STATUS_CLASSES.iter().zip(t.by_class).map(|(class, n)| (class.to_string(), json!(n))).collect();
                json!({
                    "uptime": view.uptime,
                    "pid": std::process::id(),
                    "workers_current": count,
                    "workers_target": view.target,
                    "workers_spawned": view.spawned,
                    "workers_killed": view.exits.iter().map(|(_, n)| n).sum::<u64>(),
                    "worker_exits": view.exits.iter().map(|(cause, n)| (cause.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                    "reloads": view.reloads,
                    "requests": view.requests,
                    "responses": by_class,
                    "request_seconds_sum": t.duration_sum_us as f64 / 1e6,
                    "bytes_in": t.bytes_in,
                    "bytes_out": t.bytes_out,
                    "connections_accepted": t.accepted,
                    "connections_handed_over": t.handed_over,
                    "workers_rss": view.workers.iter().filter_map(|w| w.rss).sum::<u64>(),
                    "workers_cpu_seconds": view.cpu,
                    "listen_queue": view.listeners.iter().filter_map(|(_, _, q)| *q).sum::<u32>(),
                })
            }
            "listeners" => {
                let listeners: Vec<Value> = view
                    .listeners
                    .iter()
                    .map(|(address, fd, queue)| json!({"address": address, "fd": fd, "queue": queue}))
                    .collect();
                json!({"count": listeners.len(), "listeners": listeners})
            }
            "config" => Value::Object(self.current.cfg.to_json()),
            _ => json!({"master": {"pid": std::process::id()}, "workers": workers, "count": count}),
        }
    }
}

/// A worker in `show workers`: the fields Gunicorn's control socket gives
/// (pid, age, booted, aborted, last_heartbeat), then rwsgi's.
fn worker_json(w: &WorkerView) -> Value {
    json!({
        "pid": w.pid.as_raw(), "age": w.age, "state": w.state, "booted": w.state != "booting",
        "aborted": w.aborted, "requests": w.requests, "last_heartbeat": w.silent, "current": w.current,
        "request": w.request.as_ref().map(|(line, _)| line), "request_seconds": w.request.as_ref().map(|(_, age)| age),
        "last_status": (w.last_status != 0).then_some(w.last_status),
        "rss": w.rss, "cpu_seconds": w.cpu, "restarts": w.restarts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_gunicorn_reads_them() {
        assert_eq!(Request::parse("show workers", &[]), Ok(Request::Show("workers")));
        assert_eq!(Request::parse("worker add", &[json!(2)]), Ok(Request::AddWorkers(2)));
        assert_eq!(Request::parse("worker add 3", &[]), Ok(Request::AddWorkers(3)));
        assert_eq!(Request::parse("worker remove", &[]), Ok(Request::RemoveWorkers(1)));
        assert_eq!(Request::parse("worker kill 42", &[]), Ok(Request::KillWorker(42)));
        assert_eq!(Request::parse("shutdown quick", &[]), Ok(Request::Shutdown { quick: true }));
        assert!(Request::parse("show nothing", &[]).is_err());
        assert!(Request::parse("worker add many", &[]).is_err());
    }
}

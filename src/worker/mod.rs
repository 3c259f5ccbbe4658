//! A worker process: the boot order after fork, and the serve loop.
//!
//! The loop polls the listening sockets and the parked connections (idle
//! keep-alive ones and those whose request head is still arriving) with
//! mio, so a slow or idle client never blocks the worker. When a head is
//! complete the request is served to the end — app call, body, response —
//! with every socket wait bounded by `--timeout`: on the loop's own thread
//! (`--threads 1`), or on one of the request threads (see `threads`). The
//! worker never forks and never touches another worker.

mod handler;
mod hold;
mod threads;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use pyo3::prelude::*;

use crate::config::{Config, Protocol, ProxyProtocol};
use crate::http::{self, max_head_len, HttpError, Parse};
use crate::logging::AccessLog;
use crate::net::{DeadlineIo, Listener, Peer, Stream};
use handler::{refuse, send_unsent, Handler};
use hold::{Held, HeldResponse};
use threads::{Done, Job, Pool};
// A request refused with a status (`Http`) or by closing (`Malformed`),
// in either protocol.
use crate::uwsgi::UwsgiError as Refusal;
use crate::sys::{self, Scoreboard, SlotState};
use crate::wsgi::{self, App, ListenerInfo};

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

    pub fn from_code(code: i32) -> Option<ExitReason> {
        [ExitReason::Stopped, ExitReason::BootError, ExitReason::AppLoadError, ExitReason::Panicked]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// What a worker is handed at fork: plain data built by the master.
pub struct WorkerSpec<'a> {
    pub cfg: &'a Config,
    pub listeners: &'a [std::rc::Rc<Listener>],
    pub board: &'a Scoreboard,
    pub slot: usize,
    /// The master's pid: a worker whose master is gone stops.
    pub master: nix::unistd::Pid,
}

/// Run a worker in a freshly forked child; never returns. A panic ends
/// the worker here: it must never unwind into the master's frames that
/// the child inherited.
pub fn run(spec: WorkerSpec<'_>) -> ! {
    let reason = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match boot(&spec) {
        Ok((app, access_log)) => {
            spec.board.set_state(spec.slot, SlotState::Idle);
            let handler = Handler { cfg: spec.cfg, board: spec.board, slot: spec.slot, app, access_log };
            if let Err(e) = serve(&spec, &handler) {
                log::error!("worker failed: {e}");
            }
            flush_python();
            ExitReason::Stopped
        }
        Err(reason) => reason,
    }))
    .unwrap_or(ExitReason::Panicked);
    sys::exit_now(reason.code())
}

/// Load the app once in this process and report: `--check-config`.
pub fn check_app(cfg: &Config) -> Result<(), String> {
    prepare_python(cfg).map_err(|(_, e)| e)?;
    Python::attach(|py| {
        wsgi::load_app(py, cfg).map(drop).map_err(|e| match e.traceback {
            Some(tb) => format!("{}\n{tb}", e.summary),
            None => e.summary,
        })
    })
}

/// The fixed boot order after fork: signals, inherited fds, environment,
/// Python, the app, the access log.
fn boot(spec: &WorkerSpec<'_>) -> Result<(App, Option<AccessLog>), ExitReason> {
    let cfg = spec.cfg;
    if let Err(e) = sys::install_worker_signals() {
        log::error!("cannot set up worker signals: {e}");
        return Err(ExitReason::BootError);
    }
    let mut keep: Vec<RawFd> = spec.listeners.iter().map(|l| l.as_raw_fd()).collect();
    keep.push(crate::logging::error_log_fd());
    sys::close_inherited_except(&keep);
    sys::set_heartbeat(spec.board, spec.slot);
    match sys::follow_master(spec.master) {
        Ok(true) => {}
        Ok(false) => return Err(ExitReason::Stopped),
        Err(e) => log::warn!("cannot ask to be stopped with the master: {e}"),
    }
    sys::set_process_title("rwsgi: worker", &format!("rwsgi: worker [{}]", cfg.proc_name));
    log::info!("Booting worker with pid: {}", std::process::id());
    // Opened before privileges drop, like the error log the master opened.
    let access_log = match &cfg.accesslog {
        Some(target) => match AccessLog::open(target, &cfg.access_log_format) {
            Ok(l) => Some(l),
            Err(e) => {
                log::error!("{e}");
                return Err(ExitReason::BootError);
            }
        },
        None => None,
    };
    if let Err(e) = sys::drop_privileges(cfg.user, cfg.group) {
        log::error!("cannot switch to user {:?} / group {:?}: {e}", cfg.user, cfg.group);
        return Err(ExitReason::BootError);
    }
    prepare_python(cfg).map_err(|(reason, e)| {
        log::error!("{e}");
        reason
    })?;
    enable_faulthandler();
    let infos: Vec<ListenerInfo> = spec
        .listeners
        .iter()
        .map(|l| {
            let (server_name, server_port) = l.server_name_port();
            ListenerInfo { server_name, server_port }
        })
        .collect();
    let app = Python::attach(|py| match wsgi::load_app(py, cfg) {
        Ok(callable) => App::new(py, callable, &infos, cfg).map_err(|e| wsgi::LoadError {
            summary: format!("cannot prepare the environ: {e}"),
            traceback: Some(wsgi::format_traceback(py, &e)),
        }),
        Err(e) => Err(e),
    });
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            let text = match e.traceback {
                Some(tb) => format!("{}\n{tb}", e.summary),
                None => e.summary,
            };
            // The first worker to fail tells the master; the master prints
            // it once, however many workers fail the same way.
            spec.board.report_boot_error(&text);
            return Err(ExitReason::AppLoadError);
        }
    };
    Ok((app, access_log))
}

/// Serve until stopped: on this thread alone, or with request threads.
fn serve(spec: &WorkerSpec<'_>, handler: &Handler<'_>) -> io::Result<()> {
    let poll = Poll::new()?;
    let threads = spec.cfg.threads;
    if threads <= 1 {
        return Server::new(spec, handler, poll, None)?.serve();
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
        let result = Server::new(spec, handler, poll, Some(pool)).and_then(|mut s| s.serve());
        pool.close();
        result
    })
}

/// The poll token of the request threads' waker.
const WAKER: Token = Token(usize::MAX);

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
/// master sends SIGABRT to a stuck worker. The file is a duplicate of the
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

/// Flush Python's buffered stdout/stderr and run `atexit` handlers before
/// the process ends without finalizing the interpreter.
fn flush_python() {
    Python::attach(|py| {
        let _ = py.run(
            c"import atexit, sys\ntry:\n    atexit._run_exitfuncs()\nfinally:\n    sys.stdout.flush(); sys.stderr.flush()\n",
            None,
            None,
        );
    });
}

/// How long a connection may sit in the poll, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Accepted, nothing received yet.
    Fresh,
    /// Part of a request head received.
    ReadingHead,
    /// Between requests on a keep-alive connection.
    Idle,
    /// The last response is out and our side is shut down; what the client
    /// still sends is read and dropped until it closes, so that closing
    /// with unread input (a TCP reset) cannot destroy the response on its
    /// way to the client.
    Lingering,
}

struct Conn {
    stream: Arc<Stream>,
    /// The socket's peer: what trust decisions look at.
    peer: Peer,
    /// The client as the app sees it: the peer, or the client a PROXY
    /// header named.
    remote: Peer,
    /// A PROXY protocol header is still to be read.
    proxy_pending: bool,
    listener: usize,
    buf: Vec<u8>,
    state: ConnState,
    deadline: Option<Instant>,
    /// The client shut down its sending side: serve what is buffered, then
    /// close.
    peer_closed: bool,
    /// The last read found the socket empty.
    drained: bool,
    /// The client's environ strings, made at its first request.
    remote_strings: wsgi::RemoteCache,
    /// When lingering started (the total linger time is capped).
    lingering_since: Option<Instant>,
    /// The socket is in the poll. A connection is added only when it has
    /// to wait: one served and closed on its first read (uwsgi, HTTP/1.0)
    /// never is.
    watched: bool,
    /// The client will send nothing more: it asked to close (or speaks
    /// uwsgi, one request per connection) and all it sent has been read.
    /// Such a connection is closed at once, without lingering.
    client_done: bool,
    /// A response held back, to go out at the end of the worker's turn
    /// ([`Server::flush_held`]) or before anything else is written.
    unsent: Vec<u8>,
    /// The turn in which its response joined the held list (only then
    /// can it still be there: every turn ends by emptying the list).
    held_in_turn: u64,
}

/// What the serve loop does with a connection after driving it.
enum Next {
    /// Wait in the poll for more input.
    Park,
    /// Its turn is over but input may be waiting: drive it again before
    /// blocking in the poll (readiness is edge-triggered).
    Again,
    Close,
    /// A request head is complete: hand the connection to a request thread.
    Dispatch(Box<http::Request>),
    /// A response ended the connection.
    End,
}

/// The serve loop's state.
struct Server<'a> {
    spec: &'a WorkerSpec<'a>,
    handler: &'a Handler<'a>,
    /// The request threads; `None` with `--threads 1`.
    pool: Option<&'a Pool>,
    /// The connections away with a request thread (their requests are in
    /// flight), by token: whether input may be waiting in the socket when
    /// it comes back (it was not read empty before the hand-over, or a poll
    /// event came for it meanwhile).
    away: HashMap<usize, bool>,
    /// Finished requests taken from the pool (kept to reuse its allocation).
    done: Vec<Done>,
    /// Where socket reads land before they join a connection's buffer
    /// (allocated once: no per-read zeroing).
    scratch: Vec<u8>,
    poll: Poll,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    /// A listener may still have connections queued (accept is one at a
    /// time so load spreads over workers; edge-triggered readiness will
    /// not fire again for those already queued).
    accept_pending: Vec<bool>,
    /// After an accept error (EMFILE), when to try again.
    accept_retry_at: Option<Instant>,
    /// Accepting has been failing (logged once, not at every retry).
    accept_failing: bool,
    /// Connections whose turn ended with input possibly left.
    again: Vec<usize>,
    /// Tokens to handle this round (kept to reuse its allocation).
    ready: Vec<usize>,
    /// Responses of parked connections held back for the end of the turn
    /// (`None` with request threads, which send their own), and the
    /// list they are taken into to be sent.
    held: Option<Arc<Held>>,
    sending: Vec<HeldResponse>,
    /// Turns ended so far (see `Conn::held_in_turn`).
    turn: u64,
    /// Emptied buffers of sent held responses, for the next ones.
    spare: Vec<Vec<u8>>,
    max_head: usize,
    stopping: bool,
    /// Requests started so far, and the count after which to restart.
    started: u64,
    max_requests: Option<u64>,
}

impl<'a> Server<'a> {
    fn new(spec: &'a WorkerSpec<'a>, handler: &'a Handler<'a>, poll: Poll, pool: Option<&'a Pool>) -> io::Result<Self> {
        for (i, l) in spec.listeners.iter().enumerate() {
            l.set_nonblocking()?;
            poll.registry().register(&mut SourceFd(&l.as_raw_fd()), Token(i), Interest::READABLE)?;
        }
        Ok(Server {
            spec,
            handler,
            pool,
            away: HashMap::new(),
            done: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            poll,
            conns: HashMap::new(),
            next_token: spec.listeners.len(),
            accept_pending: vec![true; spec.listeners.len()],
            accept_retry_at: None,
            accept_failing: false,
            again: Vec::new(),
            ready: Vec::new(),
            held: if pool.is_none() { Some(Held::start()?) } else { None },
            sending: Vec::new(),
            turn: 1,
            spare: Vec::new(),
            // Room for a PROXY header before the head, and for the largest
            // uwsgi packet head.
            max_head: max_head_len(&spec.cfg.limits).max(crate::uwsgi::MAX_PACKET_HEAD).saturating_add(crate::proxy::MAX_HEADER_LEN),
            stopping: false,
            started: 0,
            max_requests: spec.cfg.max_requests.map(|n| n + jitter(spec.cfg.max_requests_jitter)),
        })
    }

    /// Poll, accept, serve, expire: until asked to stop and nothing is left.
    fn serve(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            if sys::stop_requested() && !self.stopping {
                self.begin_stop();
            }
            if self.stopping && self.conns.is_empty() && self.away.is_empty() {
                return Ok(());
            }
            if sys::take_reopen_request() {
                self.reopen_logs();
            }
            self.beat();
            let mut timeout = self.poll_timeout();
            if !timeout.is_zero() && self.pool.is_some_and(|pool| !pool.poller_may_sleep()) {
                timeout = Duration::ZERO;
            }
            let polled = self.poll.poll(&mut events, Some(timeout));
            if let Some(pool) = self.pool {
                pool.poller_awake();
            }
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            // Connections are served in the order the poll reports them
            // (sorting them, by token say, would make the same ones wait
            // behind the others at every turn), then those queued for
            // another turn, each once.
            ready.extend(events.iter().map(|e| e.token().0));
            for token in self.again.drain(..) {
                if !ready.contains(&token) {
                    ready.push(token);
                }
            }
            for &token in &ready {
                if token == WAKER.0 {
                    continue;
                }
                if token < self.spec.listeners.len() {
                    self.accept_pending[token] = true;
                } else if let Some(input) = self.away.get_mut(&token) {
                    *input = true;
                } else {
                    self.on_readable(token);
                }
            }
            self.ready = ready;
            self.take_back_finished();
            if self.accept_retry_at.is_some_and(|t| t <= Instant::now()) {
                self.accept_retry_at = None;
                self.accept_pending.iter_mut().for_each(|p| *p = true);
            }
            if self.can_accept() {
                for i in 0..self.spec.listeners.len() {
                    if self.accept_pending[i] {
                        self.accept_one(i);
                    }
                }
            }
            self.expire_connections();
            self.flush_held();
        }
    }

    /// Send the responses held back during the turn (see [`hold`]): the
    /// requests of a turn run back to back, then their responses go out
    /// back to back. Each is first offered to its socket without waiting,
    /// so one client that does not read delays none of the others.
    fn flush_held(&mut self) {
        let Some(held) = &self.held else { return };
        self.turn += 1;
        let mut sending = std::mem::take(&mut self.sending);
        held.take_all(&mut sending);
        for h in sending.iter_mut() {
            hold::send_some(h);
        }
        for mut h in sending.drain(..) {
            if !h.bytes.is_empty() {
                let mut io = DeadlineIo { stream: &h.stream, timeout: self.spec.cfg.timeout };
                if io.write_all(&h.bytes).is_err() {
                    self.close(h.token);
                }
                h.bytes.clear();
            }
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(h.bytes);
            }
        }
        self.sending = sending;
    }

    /// Take a parked connection out of the map, with its held response.
    fn take_conn(&mut self, token: usize) -> Option<Conn> {
        let mut conn = self.conns.remove(&token)?;
        if conn.held_in_turn == self.turn {
            if let Some(bytes) = self.held.as_ref().and_then(|h| h.take(token)) {
                conn.unsent = bytes;
            }
        }
        Some(conn)
    }

    /// Accept while there is room for the connection. A worker whose
    /// threads are all busy still accepts: its requests queue in arrival
    /// order, so under overload every client gets its turn (waiting for a
    /// free thread to accept would starve clients still in the backlog
    /// behind busy keep-alive connections).
    fn can_accept(&self) -> bool {
        !self.stopping && self.conns.len() + self.away.len() < self.spec.cfg.worker_connections
    }

    /// The worker's heartbeat in its scoreboard slot: now, or with request
    /// threads, the last progress of the slowest busy one.
    fn beat(&self) {
        match self.pool {
            Some(pool) => {
                let (beat, oldest) = pool.progress(sys::now_ms());
                self.spec.board.set_threads_progress(self.spec.slot, beat, oldest);
            }
            None => self.spec.board.beat(self.spec.slot),
        }
    }

    /// A request is about to start: count it toward --max-requests and
    /// say whether its connection may stay open after it.
    fn admit(&mut self) -> bool {
        self.started += 1;
        let last = self.max_requests.is_some_and(|max| self.started >= max);
        if last && !self.stopping {
            log::info!("Autorestarting worker after current request ({} requests).", self.started);
            self.begin_stop();
        }
        !last && !self.stopping && !sys::stop_requested()
    }

    /// A request has finished: restart past --max-worker-memory.
    fn after_request(&mut self) {
        if let (false, Some(limit)) = (self.stopping, self.spec.cfg.max_worker_memory) {
            if let Some(rss) = resident_memory().filter(|rss| *rss > limit) {
                log::info!(
                    "Autorestarting worker: resident memory {} MiB is over --max-worker-memory {} MiB",
                    rss >> 20,
                    limit >> 20
                );
                self.begin_stop();
            }
        }
    }

    /// Serve a request on this thread (`--threads 1`).
    fn serve_inline(&mut self, conn: &mut Conn, request: http::Request) -> bool {
        if conn.unsent.capacity() == 0 {
            // A response it holds is built in a buffer used before.
            conn.unsent = self.spare.pop().unwrap_or_default();
        }
        let keep_alive_allowed = self.admit();
        self.spec.board.request_started(self.spec.slot);
        let reusable = self.handler.serve(conn, request, keep_alive_allowed, true);
        self.spec.board.request_finished(self.spec.slot);
        self.after_request();
        reusable
    }

    /// Take back the connections whose requests the threads finished.
    fn take_back_finished(&mut self) {
        let Some(pool) = self.pool else { return };
        let mut done = std::mem::take(&mut self.done);
        pool.take_done(&mut done);
        for Done { token, mut conn, reusable } in done.drain(..) {
            let input = self.away.remove(&token).unwrap_or(true);
            self.after_request();
            if reusable {
                self.park_idle(&mut conn);
                // Read again only when there may be something to read: a
                // pipelined request already buffered, input the poll saw
                // while the thread had the connection, or input left in the
                // socket before the hand-over. Anything that came after
                // that raises a poll event of its own (edge-triggered).
                let again = input || conn.peer_closed || !conn.buf.is_empty();
                self.keep(token, conn);
                if again {
                    self.again.push(token);
                }
            } else {
                self.end_conn(token, conn);
            }
        }
        self.done = done;
    }

    /// After a request, wait for the next one on a keep-alive connection.
    fn park_idle(&self, conn: &mut Conn) {
        conn.state = ConnState::Idle;
        // A stopping worker (a recycle decided during this request)
        // keeps the connection only for the stop grace.
        let idle = if self.stopping { Some(STOP_GRACE) } else { self.spec.cfg.keepalive };
        conn.deadline = idle.map(|k| Instant::now() + k);
    }

    fn poll_timeout(&self) -> Duration {
        if !self.again.is_empty() || (self.can_accept() && self.accept_pending.iter().any(|p| *p)) {
            return Duration::ZERO;
        }
        let now = Instant::now();
        // Wake often enough to beat several times per --timeout.
        let mut t = beat_interval(self.spec.cfg.timeout);
        if let Some(at) = self.accept_retry_at {
            t = t.min(at.saturating_duration_since(now));
        }
        for c in self.conns.values() {
            if let Some(d) = c.deadline {
                t = t.min(d.saturating_duration_since(now));
            }
        }
        t
    }

    /// Stop accepting; close idle keep-alive connections; let the rest
    /// finish their request: heads in progress, and fresh connections for
    /// a short grace (a client that connected just before the stop is
    /// about to send).
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.spec.board.set_state(self.spec.slot, SlotState::Stopping);
        for l in self.spec.listeners {
            let _ = self.poll.registry().deregister(&mut SourceFd(&l.as_raw_fd()));
        }
        // Idle keep-alive connections and fresh ones get a short grace: a
        // request already on its way is served (with Connection: close)
        // rather than met by a closed socket.
        let grace = Instant::now() + STOP_GRACE;
        for c in self.conns.values_mut().filter(|c| matches!(c.state, ConnState::Fresh | ConnState::Idle)) {
            c.deadline = Some(c.deadline.map_or(grace, |d| d.min(grace)));
        }
    }

    fn accept_one(&mut self, listener: usize) {
        match self.spec.listeners[listener].accept() {
            Ok((stream, peer)) => {
                let token = self.next_token;
                self.next_token += 1;
                let cfg = self.spec.cfg;
                let deadline = cfg.timeout.map(|t| Instant::now() + t);
                let proxy_pending = cfg.proxy_protocol != ProxyProtocol::Off && cfg.proxy_allow.allows(peer.ip());
                let conn = Conn {
                    stream: Arc::new(stream),
                    remote: peer,
                    peer,
                    proxy_pending,
                    listener,
                    buf: Vec::new(),
                    state: ConnState::Fresh,
                    deadline,
                    peer_closed: false,
                    drained: false,
                    remote_strings: None,
                    lingering_since: None,
                    watched: false,
                    client_done: false,
                    unsent: Vec::new(),
                    held_in_turn: 0,
                };
                self.accept_failing = false;
                // Clients usually send the request with the connection.
                self.drive_and_place(token, conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.accept_pending[listener] = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                // EMFILE and friends: back off briefly, then try again (no
                // new readiness event may come for connections already queued).
                if self.accept_failing {
                    log::debug!("accept failed: {e}");
                } else {
                    log::error!("accept failed: {e} (retrying every {} ms)", ACCEPT_RETRY.as_millis());
                    self.accept_failing = true;
                }
                self.accept_pending[listener] = false;
                self.accept_retry_at = Some(Instant::now() + ACCEPT_RETRY);
            }
        }
    }

    /// Read what is there; serve the complete requests (a few per turn, so
    /// one pipelining client cannot starve the others); park the rest.
    fn on_readable(&mut self, token: usize) {
        let Some(conn) = self.take_conn(token) else { return };
        self.drive_and_place(token, conn);
    }

    /// Drive a connection, then keep it (watched by the poll), hand it to
    /// a request thread, or close it.
    fn drive_and_place(&mut self, token: usize, mut conn: Conn) {
        let next = if conn.state == ConnState::Lingering {
            let next = linger(&conn);
            // Each read earns the client another LINGER, up to LINGER_TOTAL.
            if let Some(since) = conn.lingering_since {
                conn.deadline = Some((Instant::now() + LINGER).min(since + LINGER_TOTAL));
            }
            next
        } else {
            self.drive(&mut conn)
        };
        match next {
            Next::Park => self.keep(token, conn),
            Next::Again => {
                self.keep(token, conn);
                self.again.push(token);
            }
            Next::Close => self.finish_conn(conn),
            Next::End => self.end_conn(token, conn),
            Next::Dispatch(request) => {
                // A connection not yet in the poll joins it only if it comes
                // back to wait (input that came meanwhile is reported then).
                let keep_alive_allowed = self.admit();
                let pool = self.pool.expect("only a worker with request threads dispatches");
                self.away.insert(token, !conn.drained);
                pool.submit(Job { token, conn, request: *request, keep_alive_allowed });
            }
        }
    }

    fn drive(&mut self, conn: &mut Conn) -> Next {
        for turn in 0..REQUESTS_PER_TURN {
            // After a request, a socket last seen empty needs no read: input
            // that came since raised a poll event of its own (epoll(7) on
            // edge-triggered stream sockets), which brings the connection
            // back here.
            let nothing_new = turn > 0 && conn.drained;
            if !conn.peer_closed && !nothing_new {
                match fill_nonblocking(&conn.stream, &mut conn.buf, self.max_head.saturating_add(1), &mut self.scratch) {
                    Ok(FillResult::Eof) => conn.peer_closed = true,
                    Ok(FillResult::Drained) => conn.drained = true,
                    Ok(FillResult::Full) => conn.drained = false,
                    Err(e) => {
                        log::debug!("read failed: {e}");
                        return Next::Close;
                    }
                }
            }
            if conn.proxy_pending {
                match crate::proxy::parse(&conn.buf, self.spec.cfg.proxy_protocol) {
                    Ok(Parse::Complete(header)) => {
                        if let Some(source) = header.source {
                            conn.remote = Peer::Tcp(source);
                        }
                        conn.buf.drain(..header.len);
                        conn.proxy_pending = false;
                    }
                    Ok(Parse::Partial) => return self.wait_for_head(conn),
                    Err(e) => {
                        log::warn!("closing a connection from {}: {}", conn.peer, e.0);
                        return Next::Close;
                    }
                }
            }
            let parsed = match self.spec.cfg.protocol {
                Protocol::Http => {
                    // RFC 9112 §2.2: empty lines before a request line are
                    // ignored; drop them here so they cannot fill the buffer.
                    let blank = conn.buf.chunks_exact(2).take_while(|pair| *pair == b"\r\n").count() * 2;
                    conn.buf.drain(..blank);
                    if conn.buf.is_empty() {
                        return if conn.peer_closed { Next::Close } else { Next::Park };
                    }
                    http::parse_request(&conn.buf, &self.spec.cfg.limits).map_err(Refusal::Http)
                }
                Protocol::Uwsgi if !self.spec.cfg.uwsgi_allow.allows(conn.peer.ip()) => {
                    // Debug, not warning: any host that reaches the port
                    // could fill the log.
                    log::debug!("refusing a uwsgi request from {} (not in --uwsgi-allow-from)", conn.peer);
                    Err(Refusal::Http(HttpError::Forbidden))
                }
                Protocol::Uwsgi => {
                    if conn.buf.is_empty() {
                        return if conn.peer_closed { Next::Close } else { Next::Park };
                    }
                    crate::uwsgi::parse_packet(&conn.buf, &self.spec.cfg.limits)
                }
            };
            let request = match parsed {
                Ok(Parse::Complete(r)) => r,
                Ok(Parse::Partial) => return self.wait_for_head(conn),
                Err(Refusal::Http(e)) => {
                    refuse(conn, e);
                    return linger(conn);
                }
                Err(Refusal::Malformed(why)) => {
                    log::warn!("closing a connection from {}: {why}", conn.peer);
                    return Next::Close;
                }
            };
            if self.pool.is_some() {
                return Next::Dispatch(Box::new(request));
            }
            if !self.serve_inline(conn, request) {
                return Next::End;
            }
            self.park_idle(conn);
        }
        Next::Again
    }

    /// Park a connection whose request head (or PROXY header) is not
    /// whole yet; the head deadline starts with its first byte.
    fn wait_for_head(&self, conn: &mut Conn) -> Next {
        if conn.peer_closed {
            log::debug!("client closed with an incomplete request");
            return Next::Close;
        }
        if conn.state != ConnState::ReadingHead && !conn.buf.is_empty() {
            conn.state = ConnState::ReadingHead;
            conn.deadline = self.spec.cfg.timeout.map(|t| Instant::now() + t);
        }
        Next::Park
    }

    fn expire_connections(&mut self) {
        let now = Instant::now();
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(t, _)| *t)
            .collect();
        for t in expired {
            match self.conns.get(&t).map(|c| c.state) {
                Some(ConnState::ReadingHead) => {
                    let mut c = self.take_conn(t).expect("present: just looked it up");
                    // A slow client gets its 408 and the close at once.
                    refuse(&mut c, HttpError::Timeout);
                    self.finish_conn(c);
                }
                Some(ConnState::Fresh | ConnState::Idle) => self.retire_idle(t),
                Some(ConnState::Lingering) | None => self.close(t),
            }
        }
    }

    /// Close a connection that is idle past its time (or at a stop), but
    /// first serve a request that arrived while the worker was busy with
    /// others: it was sent in good faith and must not be dropped.
    fn retire_idle(&mut self, token: usize) {
        self.on_readable(token);
        let now = Instant::now();
        let done = self.conns.get(&token).is_some_and(|c| {
            matches!(c.state, ConnState::Fresh | ConnState::Idle) && c.buf.is_empty() && c.deadline.is_some_and(|d| d <= now)
        });
        if done {
            let conn = self.take_conn(token).expect("present: just looked it up");
            self.end_conn(token, conn);
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(c) = self.take_conn(token) {
            self.finish_conn(c);
        }
    }

    /// Keep a connection until the poll reports it.
    /// Its held response, if any, joins the held list.
    fn keep(&mut self, token: usize, mut conn: Conn) {
        if self.watch(token, &mut conn) {
            if let (Some(held), false) = (&self.held, conn.unsent.is_empty()) {
                held.hold(token, &conn.stream, std::mem::take(&mut conn.unsent));
                conn.held_in_turn = self.turn;
            }
            self.conns.insert(token, conn);
        } else {
            self.finish_conn(conn);
        }
    }

    /// Put the connection in the poll if it is not there yet. Input that
    /// came before is reported at once (epoll checks readiness on adding).
    fn watch(&self, token: usize, conn: &mut Conn) -> bool {
        if !conn.watched {
            let fd = conn.stream.as_raw_fd();
            if let Err(e) = self.poll.registry().register(&mut SourceFd(&fd), Token(token), Interest::READABLE) {
                log::error!("cannot watch a connection: {e}");
                return false;
            }
            conn.watched = true;
        }
        true
    }

    /// Close a connection: shut it down, so the client sees the end even
    /// while another process holds a copy of the socket (a child the app
    /// forked during the request), take it out of the poll if it is there,
    /// and close the descriptor (dropping the connection).
    fn finish_conn(&mut self, mut conn: Conn) {
        if !conn.unsent.is_empty() {
            let _ = send_unsent(&mut conn, self.spec.cfg.timeout);
        }
        if conn.watched {
            let _ = self.poll.registry().deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
        }
        conn.stream.shutdown();
    }

    /// After a response that ends the connection: close at once when the
    /// client will send nothing more, else shut down our side and read
    /// what the client still sends before closing, so that input arriving
    /// at a closed socket cannot reset the connection (and destroy the
    /// response) before the client has read it.
    fn end_conn(&mut self, token: usize, mut conn: Conn) {
        if !conn.unsent.is_empty() && send_unsent(&mut conn, self.spec.cfg.timeout).is_err() {
            self.finish_conn(conn);
            return;
        }
        if conn.client_done {
            self.finish_conn(conn);
            return;
        }
        // A refused request has started lingering already.
        if conn.state != ConnState::Lingering {
            start_lingering(&mut conn);
        }
        match linger(&conn) {
            Next::Close => self.finish_conn(conn),
            _ => self.keep(token, conn),
        }
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = crate::logging::reopen_error_log() {
            log::error!("{e}");
        }
        enable_faulthandler();
        if let Some(l) = &self.handler.access_log {
            if let Err(e) = l.reopen() {
                log::error!("{e}");
            }
        }
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

/// Bytes asked for by one read of a connection.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers of sent held responses kept for reuse.
const SPARE_BUFFERS: usize = 64;
/// Requests served from one connection before the others get a turn.
const REQUESTS_PER_TURN: usize = 8;
/// Pause after an accept error before accepting again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a connection that sent nothing is kept after a stop begins.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long a closing connection may go quiet before it is closed.
const LINGER: Duration = Duration::from_secs(2);
/// The longest a closing connection's late input is read and dropped.
const LINGER_TOTAL: Duration = Duration::from_secs(30);

/// Shut down our sending side and wait (in the poll) for the client to
/// close, dropping whatever it still sends.
fn start_lingering(conn: &mut Conn) {
    conn.stream.shutdown_write();
    conn.state = ConnState::Lingering;
    conn.buf = Vec::new();
    let now = Instant::now();
    conn.deadline = Some(now + LINGER);
    conn.lingering_since = Some(now);
}

/// Read and drop a lingering connection's input; close at EOF.
fn linger(conn: &Conn) -> Next {
    let mut sink = [0u8; 16 * 1024];
    loop {
        match (&*conn.stream).read(&mut sink) {
            Ok(0) => return Next::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Park,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
}

enum FillResult {
    /// The socket has nothing more to read for now.
    Drained,
    /// `buf` reached its limit; more may be waiting.
    Full,
    Eof,
}

/// Read without blocking until the socket is drained or `buf` holds
/// `limit` bytes, through `chunk`. A read shorter than asked for means
/// the socket's queue is empty (a stream socket), so no second read is
/// spent to hear EAGAIN.
fn fill_nonblocking(stream: &Stream, buf: &mut Vec<u8>, limit: usize, chunk: &mut [u8]) -> io::Result<FillResult> {
    while buf.len() < limit {
        match (&*stream).read(chunk) {
            Ok(0) => return Ok(FillResult::Eof),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    return Ok(FillResult::Drained);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(FillResult::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(FillResult::Full)
}

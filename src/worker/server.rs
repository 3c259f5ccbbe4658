//! The serve loop of a worker's main thread: poll the listeners, the
//! hand-off inbox and the waiting connections, accept, decode requests,
//! serve them here ([`Mode::Inline`]) or hand them to request threads
//! ([`Mode::Threads`]), hand connections to other workers while busy
//! (`handoff`), and close connections whose deadline has passed.
//!
//! A connection is in exactly one place: parked in `conns` (waiting in the
//! poll, or about to; lent to the helper thread while the app runs), away
//! with a request thread, in the hands of the function driving it, or on
//! its way to another worker.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::conn::{Conn, ConnState, SocketInput, Timers, STOP_GRACE};
use super::handler::{After, Handler};
use super::handoff::{self, Channel, Lender};
use super::hold::{self, Held, HeldResponse};
use super::reload::ModuleReport;
use super::signals::SignalPipe;
use super::threads::{Done, Job, Pool};
use super::{WorkerSpec, SIGNAL_PIPE, WAKER};
use crate::http::{HttpError, Parse};
use crate::net::DeadlineIo;
use crate::sys::scoreboard::Recycle;
use crate::sys::{self, SlotState};
use crate::wire::{Incoming, Refusal, Wire};

/// How a worker runs its requests.
pub(super) enum Mode<'a> {
    /// `--threads 1`: on the main thread, with the small responses of a
    /// turn held for its end.
    Inline(Holding),
    /// `--threads N`: on request threads.
    Threads(Away<'a>),
}

/// Responses held back during a turn (see [`hold`]).
pub(super) struct Holding {
    /// Responses of parked connections, waiting for the end of the turn
    /// (or for the flusher thread).
    held: Arc<Held>,
    /// The list they are taken into to be sent (kept for its allocation).
    sending: Vec<HeldResponse>,
    /// Turns ended so far (see `Conn::held_in_turn`).
    turn: u64,
    /// Emptied buffers of sent held responses, for the next ones.
    spare: Vec<Vec<u8>>,
    /// The parked connections go to it for each app call (see `handoff`).
    lender: Option<Arc<Lender>>,
}

/// The request threads and the connections away with them.
pub(super) struct Away<'a> {
    pool: &'a Pool,
    /// Connections away with a request thread (their requests are in
    /// flight), by token: whether input may be waiting in the socket when
    /// it comes back (it was not read empty before the hand-over, or a
    /// poll event came for it meanwhile).
    conns: HashMap<usize, bool>,
    /// Finished requests taken from the pool (kept for its allocation).
    done: Vec<Done>,
}

impl Mode<'_> {
    /// Requests run on the main thread, with held responses; with a
    /// lender, its parked connections are handed over during long calls.
    pub fn inline(lender: Option<Arc<Lender>>) -> io::Result<Mode<'static>> {
        let held = Held::start(lender.clone())?;
        Ok(Mode::Inline(Holding { held, sending: Vec::new(), turn: 1, spare: Vec::new(), lender }))
    }

    /// Requests run on the threads of `pool`.
    pub fn threads(pool: &Pool) -> Mode<'_> {
        Mode::Threads(Away { pool, conns: HashMap::new(), done: Vec::new() })
    }
}

/// What the loop does with a connection after driving it.
enum Next {
    /// Wait in the poll for more input.
    Wait,
    /// Its turn is over but input may be waiting: drive it again before
    /// blocking in the poll (readiness is edge-triggered).
    DriveAgain,
    /// Close at once: the client is gone, or it is owed nothing more and
    /// will send nothing more.
    CloseNow,
    /// The last response is out but the client may still send: shut our
    /// side and drop its input until it closes (see `Conn::linger`).
    Linger,
    /// A request is decoded: hand the connection to a request thread.
    Dispatch(Box<Incoming>),
}

/// Accepting new connections, and taking those other workers hand over.
struct Acceptor {
    /// A source may still have connections queued: each listener, then
    /// the hand-off inbox (accept is one at a time so load spreads over
    /// workers; edge-triggered readiness will not fire again for those
    /// already queued).
    pending: Vec<bool>,
    /// After an accept error (EMFILE), when to try again.
    retry_at: Option<Instant>,
    /// Accepting has been failing (logged once, not at every retry).
    failing: bool,
}

/// The serve loop's state.
pub(super) struct Server<'a> {
    spec: &'a WorkerSpec<'a>,
    handler: &'a Handler<'a>,
    wire: Wire<'a>,
    mode: Mode<'a>,
    /// TERM as Python sees it: read when CPython reports a signal.
    signals: Option<&'a SignalPipe>,
    poll: Poll,
    /// Connections parked in the loop, by token.
    conns: HashMap<usize, Conn>,
    next_token: usize,
    accept: Acceptor,
    /// Connections whose turn ended with input possibly left.
    again: Vec<usize>,
    /// Tokens to handle this round (kept for its allocation).
    ready: Vec<usize>,
    /// Where socket reads land before they join a connection's buffer
    /// (allocated once: no per-read zeroing).
    scratch: Vec<u8>,
    max_head: usize,
    /// When the worker began to stop (TERM, its last request, memory).
    stopping_since: Option<Instant>,
    /// How long after the stop idle keep-alive connections are kept
    /// (`Timers::drain`): the drain window when told to stop, the short
    /// grace when the worker recycles itself.
    idle_drain: Duration,
    /// Requests started so far, and the count after which to restart.
    started: u64,
    max_requests: Option<u64>,
    /// `--reload`: the imported files, told to the master.
    modules: Option<ModuleReport>,
    /// The generation's hand-off pair, with `--handoff-after` (see
    /// `handoff`).
    handoff: Option<Handoff<'a>>,
}

/// Handing connections over, and taking them.
struct Handoff<'a> {
    channel: &'a Channel,
    /// How long the worker is busy before its connections go.
    after: Duration,
    /// With request threads: since when every one has been busy.
    saturated_since: Option<Instant>,
    /// With request threads: whether one was free at the last look (as
    /// the scoreboard says).
    spare: Option<bool>,
}

/// Bytes asked for by one read of a connection (and room for a connection
/// handed over).
const READ_CHUNK: usize = 64 * 1024;
const _: () = assert!(READ_CHUNK >= handoff::MAX_MESSAGE);
/// Buffers of sent held responses kept for reuse.
const SPARE_BUFFERS: usize = 64;
/// Requests served from one connection before the others get a turn.
const REQUESTS_PER_TURN: usize = 8;
/// How often a saturated worker looks for a free one to hand over to.
const RECHECK_FREE: Duration = Duration::from_millis(2);
/// Pause after an accept error before accepting again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl<'a> Server<'a> {
    /// Watch the listeners (and the signal pipe) in `poll` and prepare
    /// the loop.
    pub fn new(
        spec: &'a WorkerSpec<'a>,
        handler: &'a Handler<'a>,
        poll: Poll,
        mode: Mode<'a>,
        signals: Option<&'a SignalPipe>,
    ) -> io::Result<Self> {
        for (i, l) in spec.listeners.iter().enumerate() {
            l.set_nonblocking()?;
            poll.registry().register(&mut SourceFd(&l.as_raw_fd()), Token(i), Interest::READABLE)?;
        }
        if let Some(pipe) = signals {
            poll.registry().register(&mut SourceFd(&pipe.fd()), SIGNAL_PIPE, Interest::READABLE)?;
        }
        let handoff = spec.handoff.zip(spec.cfg.handoff_after).map(|(channel, after)| Handoff { channel, after, saturated_since: None, spare: None });
        // The inbox is polled as one more listener, after the others.
        let sources = spec.listeners.len() + usize::from(handoff.is_some());
        if let Some(h) = &handoff {
            poll.registry().register(&mut SourceFd(&h.channel.inbox_fd()), Token(spec.listeners.len()), Interest::READABLE)?;
        }
        let wire = Wire::new(spec.cfg);
        Ok(Server {
            spec,
            handler,
            max_head: wire.max_head(),
            wire,
            mode,
            signals,
            poll,
            conns: HashMap::new(),
            next_token: sources,
            accept: Acceptor { pending: vec![true; sources], retry_at: None, failing: false },
            again: Vec::new(),
            ready: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            stopping_since: None,
            idle_drain: STOP_GRACE,
            started: 0,
            max_requests: spec.cfg.max_requests.map(|n| n + super::jitter(spec.cfg.max_requests_jitter)),
            modules: spec.reload_dir.and_then(ModuleReport::start),
            handoff,
        })
    }

    /// Poll, accept, serve, expire: until asked to stop and nothing is left.
    pub fn serve(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            // A process the app forked that returned here must not serve.
            sys::leave_if_forked_child();
            if sys::stop_requested() && self.stopping_since.is_none() {
                self.begin_stop();
            }
            if self.stopping_since.is_some() && self.conns.is_empty() && self.away_count() == 0 {
                // A connection handed over to a generation whose workers
                // all stop is taken by the last of them, and finished.
                if !self.take_one_over() {
                    return Ok(());
                }
            }
            if sys::take_reopen_request() {
                self.reopen_logs();
            }
            self.beat();
            if let Some(modules) = &mut self.modules {
                modules.tick();
            }
            match self.wait(&mut events) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.handle_events(&events);
            self.take_back_finished();
            self.hand_over_if_saturated();
            self.accept_while_room();
            self.expire_connections();
            self.flush_held();
        }
    }

    /// Block in the poll until something is ready or a deadline is due.
    fn wait(&mut self, events: &mut Events) -> io::Result<()> {
        let mut timeout = self.poll_timeout();
        if let Mode::Threads(away) = &self.mode {
            if !timeout.is_zero() && !away.pool.poller_may_sleep() {
                timeout = Duration::ZERO;
            }
        }
        let polled = self.poll.poll(events, Some(timeout));
        if let Mode::Threads(away) = &self.mode {
            away.pool.poller_awake();
        }
        polled
    }

    /// Act on what the poll reported. Connections are served in the order
    /// the poll reports them (sorting them, by token say, would make the
    /// same ones wait behind the others at every turn), then those queued
    /// for another turn, each once.
    fn handle_events(&mut self, events: &Events) {
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
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
            if token == SIGNAL_PIPE.0 {
                if let Some(pipe) = self.signals {
                    pipe.dispatch();
                }
                continue;
            }
            if token < self.accept.pending.len() {
                self.accept.pending[token] = true;
            } else if let Some(input) = self.away_mut(token) {
                *input = true;
            } else {
                self.on_readable(token);
            }
        }
        self.ready = ready;
    }

    /// Send the responses held back during the turn (see [`hold`]): the
    /// requests of a turn run back to back, then their responses go out
    /// back to back. Each is first offered to its socket without waiting,
    /// so one client that does not read delays none of the others.
    fn flush_held(&mut self) {
        let Mode::Inline(holding) = &mut self.mode else { return };
        holding.turn += 1;
        let mut sending = std::mem::take(&mut holding.sending);
        holding.held.take_all(&mut sending);
        for h in sending.iter_mut() {
            hold::send_some(h);
        }
        let mut failed = Vec::new();
        for mut h in sending.drain(..) {
            if !h.bytes.is_empty() {
                let mut io = DeadlineIo { stream: &h.stream, timeout: self.spec.cfg.timeout };
                if io.write_all(&h.bytes).is_err() {
                    failed.push(h.token);
                }
                h.bytes.clear();
            }
            if holding.spare.len() < SPARE_BUFFERS {
                holding.spare.push(h.bytes);
            }
        }
        holding.sending = sending;
        for token in failed {
            self.close_parked(token);
        }
    }

    /// Take a parked connection out of the map, with its held response.
    fn take_conn(&mut self, token: usize) -> Option<Conn> {
        let mut conn = self.conns.remove(&token)?;
        if let Mode::Inline(holding) = &self.mode {
            if conn.held_in_turn == holding.turn {
                if let Some(bytes) = holding.held.take(token) {
                    conn.unsent = bytes;
                }
            }
        }
        Some(conn)
    }

    /// The connections away with request threads.
    fn away_count(&self) -> usize {
        match &self.mode {
            Mode::Threads(away) => away.conns.len(),
            Mode::Inline(_) => 0,
        }
    }

    /// A connection away with a request thread: whether input may wait.
    fn away_mut(&mut self, token: usize) -> Option<&mut bool> {
        match &mut self.mode {
            Mode::Threads(away) => away.conns.get_mut(&token),
            Mode::Inline(_) => None,
        }
    }

    /// Accept while there is room for the connection. A worker whose
    /// threads are all busy still accepts: its requests queue in arrival
    /// order, so under overload every client gets its turn (waiting for a
    /// free thread to accept would starve clients still in the backlog
    /// behind busy keep-alive connections).
    fn can_accept(&self) -> bool {
        self.stopping_since.is_none() && self.conns.len() + self.away_count() < self.spec.cfg.worker_connections
    }

    /// Accept from every listener that may have connections queued.
    fn accept_while_room(&mut self) {
        if self.accept.retry_at.is_some_and(|t| t <= Instant::now()) {
            self.accept.retry_at = None;
            self.accept.pending.iter_mut().for_each(|p| *p = true);
        }
        if self.can_accept() {
            for i in 0..self.spec.listeners.len() {
                if self.accept.pending[i] {
                    self.accept_one(i);
                }
            }
        }
        if self.accept.pending.get(self.spec.listeners.len()) == Some(&true) && self.can_take_over() {
            let _ = self.take_one_over();
        }
    }

    /// Whether to take a connection another worker hands over: there is
    /// room, and a thread free to serve it at once (a worker busy itself
    /// would only make it wait again). A stopping worker still takes them:
    /// the others of its generation may all be stopping too, and it
    /// finishes them as its own (see `begin_stop`).
    fn can_take_over(&self) -> bool {
        let free = match &self.mode {
            Mode::Inline(_) => true,
            Mode::Threads(away) => away.pool.has_idle_thread(),
        };
        free && self.conns.len() + self.away_count() < self.spec.cfg.worker_connections
    }

    /// Take one connection from the hand-off inbox and drive it, as if
    /// accepted here; whether there was one.
    fn take_one_over(&mut self) -> bool {
        let Some(h) = &self.handoff else { return false };
        let inbox = self.spec.listeners.len();
        match h.channel.receive(&mut self.scratch) {
            Ok(Some(conn)) => {
                let token = self.next_token;
                self.next_token += 1;
                self.drive_and_place(token, conn);
                true
            }
            Ok(None) => {
                self.accept.pending[inbox] = false;
                false
            }
            Err(e) => {
                log::warn!("cannot take a connection handed over: {e}");
                self.accept.pending[inbox] = false;
                false
            }
        }
    }

    /// With request threads: once every thread has been busy for
    /// `--handoff-after`, hand the parked connections and the queued
    /// requests over to the other workers (see `handoff`).
    fn hand_over_if_saturated(&mut self) {
        let (Some(h), Mode::Threads(away)) = (&mut self.handoff, &mut self.mode) else { return };
        let spare = away.pool.has_idle_thread();
        if h.spare != Some(spare) {
            // For the others' hand-overs: this worker can take one.
            h.spare = Some(spare);
            self.spec.board.set_spare_thread(self.spec.slot, spare);
        }
        if spare || self.stopping_since.is_some() {
            h.saturated_since = None;
            return;
        }
        let since = *h.saturated_since.get_or_insert_with(Instant::now);
        if since.elapsed() < h.after || !handoff::another_worker_free(self.spec.slot) {
            return;
        }
        let mut moved = handoff::hand_over(h.channel, self.poll.registry(), &mut self.conns, |_| false);
        let mut requests = 0;
        for job in away.pool.take_queued() {
            if h.channel.send(&job.conn) {
                away.conns.remove(&job.token);
                handoff::forget(self.poll.registry(), job.conn);
                requests += 1;
            } else {
                away.pool.submit(job);
            }
        }
        moved += requests;
        // Those requests count toward --max-requests where they are served.
        self.started -= requests;
        self.spec.board.tally(self.spec.slot).handed_over(moved);
    }

    /// The worker's heartbeat in its scoreboard slot: now, or with request
    /// threads, the last progress of the slowest busy one.
    fn beat(&self) {
        match &self.mode {
            Mode::Threads(away) => {
                let (beat, oldest) = away.pool.progress(sys::now_ms());
                self.spec.board.set_threads_progress(self.spec.slot, beat, oldest);
            }
            Mode::Inline(_) => self.spec.board.beat(self.spec.slot),
        }
    }

    /// A request is about to start: count it toward --max-requests and
    /// say whether its connection may stay open after it.
    fn admit(&mut self) -> bool {
        self.started += 1;
        let last = self.max_requests.is_some_and(|max| self.started >= max);
        if last && self.stopping_since.is_none() {
            log::info!("Autorestarting worker after current request ({} requests).", self.started);
            self.spec.board.note_recycle(self.spec.slot, Recycle::MaxRequests);
            self.begin_stop();
        }
        !last && self.stopping_since.is_none() && !sys::stop_requested()
    }

    /// A request has finished: restart past --max-worker-memory.
    fn after_request(&mut self) {
        if let (None, Some(limit)) = (self.stopping_since, self.spec.cfg.max_worker_memory) {
            if let Some(rss) = super::resident_memory().filter(|rss| *rss > limit) {
                log::info!(
                    "Autorestarting worker: resident memory {} MiB is over --max-worker-memory {} MiB",
                    rss >> 20,
                    limit >> 20
                );
                self.spec.board.note_recycle(self.spec.slot, Recycle::Memory);
                self.begin_stop();
            }
        }
    }

    /// Serve a request on this thread (`--threads 1`).
    fn serve_inline(&mut self, conn: &mut Conn, incoming: Incoming) -> After {
        if let Mode::Inline(holding) = &mut self.mode {
            if conn.unsent.capacity() == 0 {
                // A response it holds is built in a buffer used before.
                conn.unsent = holding.spare.pop().unwrap_or_default();
            }
        }
        let keep_alive_allowed = self.admit();
        self.spec.board.request_started(self.spec.slot);
        // post_request runs once the response is out, as under Gunicorn:
        // with request hooks, nothing is held for the end of the turn.
        let hold = !self.handler.app.has_request_hooks();
        let after = match (&self.mode, self.conns.is_empty(), self.stopping_since) {
            (Mode::Inline(Holding { lender: Some(lender), held, .. }), false, None) => {
                // The parked connections are the helper's while the app
                // runs: it hands them over if the call runs long.
                lender.lend(&mut self.conns);
                held.wake_flusher();
                let after = self.handler.serve(conn, incoming, keep_alive_allowed, hold);
                lender.take_back(&mut self.conns);
                self.spec.board.tally(self.spec.slot).handed_over(lender.take_moved());
                after
            }
            _ => self.handler.serve(conn, incoming, keep_alive_allowed, hold),
        };
        self.spec.board.request_finished(self.spec.slot);
        self.after_request();
        after
    }

    /// Take back the connections whose requests the threads finished.
    fn take_back_finished(&mut self) {
        let Mode::Threads(away) = &mut self.mode else { return };
        let mut done = std::mem::take(&mut away.done);
        away.pool.take_done(&mut done);
        for Done { token, mut conn, after } in done.drain(..) {
            let input = match &mut self.mode {
                Mode::Threads(away) => away.conns.remove(&token).unwrap_or(true),
                Mode::Inline(_) => true,
            };
            self.after_request();
            match after {
                After::KeepAlive => {
                    conn.park_idle();
                    // Read again only when there may be something to read:
                    // a pipelined request already buffered, input the poll
                    // saw while the thread had the connection, or input
                    // left in the socket before the hand-over. Anything
                    // that came after that raises a poll event of its own
                    // (edge-triggered).
                    let again = input || conn.input == SocketInput::Closed || !conn.buf.is_empty();
                    self.keep(token, conn);
                    if again {
                        self.again.push(token);
                    }
                }
                After::Linger => self.linger_and_close(token, conn),
                After::Close => self.close_now(conn),
            }
        }
        if let Mode::Threads(away) = &mut self.mode {
            away.done = done;
        }
    }

    /// The deadlines' inputs besides each connection's state.
    fn timers(&self) -> Timers {
        Timers {
            timeout: self.spec.cfg.timeout,
            keepalive: self.spec.cfg.keepalive,
            stopping_since: self.stopping_since,
            drain: self.idle_drain,
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.again.is_empty() || (self.can_accept() && self.accept.pending.iter().any(|p| *p)) {
            return Duration::ZERO;
        }
        let now = Instant::now();
        // Wake often enough to beat several times per --timeout.
        let mut t = super::beat_interval(self.spec.cfg.timeout);
        if let Some(at) = self.accept.retry_at {
            t = t.min(at.saturating_duration_since(now));
        }
        // (Only with something to hand over: parked connections, or more
        // requests away than threads to run them.)
        let waiting = !self.conns.is_empty() || self.away_count() > self.spec.cfg.threads;
        let due = self.handoff.as_ref().and_then(|h| h.saturated_since.map(|since| since + h.after));
        if let Some(at) = due.filter(|_| waiting) {
            // Due, or overdue while no other worker was free: look again
            // soon (a worker that frees up says so only on the scoreboard).
            t = t.min(at.saturating_duration_since(now).max(RECHECK_FREE));
        }
        let timers = self.timers();
        for c in self.conns.values() {
            if let Some(d) = c.deadline(&timers) {
                t = t.min(d.saturating_duration_since(now));
            }
        }
        t
    }

    /// Stop accepting; let the connections finish their request: heads in
    /// progress, fresh ones for a short grace (a client that sent just
    /// before the stop is served, with `Connection: close`), idle
    /// keep-alive ones through the drain (`Timers::drain`).
    fn begin_stop(&mut self) {
        // Asked to (not a recycle, which leaves the queue to the others).
        let signalled = sys::stop_requested();
        self.stopping_since = Some(Instant::now());
        // A recycle (--max-requests, --max-worker-memory) is the worker's
        // own decision, to be gone soon and its memory freed: its idle
        // connections get the short grace, not the whole drain. (A request
        // a balancer sends on one just as it closes is then the one that
        // can meet the close.)
        self.idle_drain = if signalled { super::conn::drain_window(self.spec.cfg.graceful_timeout) } else { STOP_GRACE };
        // However the stop came (TERM, the last of --max-requests, memory),
        // every response head written from now on, on any thread, says
        // `Connection: close`.
        sys::request_stop();
        // The app's SIGTERM handler runs now, even if the loop ends at
        // once (nothing left to serve) and never polls the signal pipe.
        if let Some(pipe) = self.signals {
            pipe.dispatch();
        }
        // Then, with nothing slow in between, the queue is taken and the
        // worker marked stopping (after which the master may stop the
        // sockets listening, resetting what is still queued).
        if signalled {
            self.take_queued_connections();
        }
        self.spec.board.set_state(self.spec.slot, SlotState::Stopping);
        if self.spec.board.last_to_stop(self.spec.slot) {
            // What came since the take above, then no more: later
            // connections are refused (a balancer retries them elsewhere).
            self.take_queued_connections();
            for l in self.spec.listeners {
                l.stop_listening();
            }
        }
        for l in self.spec.listeners {
            let _ = self.poll.registry().deregister(&mut SourceFd(&l.as_raw_fd()));
        }
    }

    fn accept_one(&mut self, listener: usize) {
        match self.spec.listeners[listener].accept() {
            Ok((stream, peer)) => {
                let (token, conn) = self.new_conn(stream, peer, listener);
                self.accept.failing = false;
                // Clients usually send the request with the connection.
                self.drive_and_place(token, conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.accept.pending[listener] = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                // EMFILE and friends: back off briefly, then try again (no
                // new readiness event may come for connections already queued).
                if self.accept.failing {
                    log::debug!("accept failed: {e}");
                } else {
                    log::error!("accept failed: {e} (retrying every {} ms)", ACCEPT_RETRY.as_millis());
                    self.accept.failing = true;
                }
                self.accept.pending[listener] = false;
                self.accept.retry_at = Some(Instant::now() + ACCEPT_RETRY);
            }
        }
    }

    /// A connection just accepted, with its token; counted.
    fn new_conn(&mut self, stream: crate::net::Stream, peer: crate::net::Peer, listener: usize) -> (usize, Conn) {
        let token = self.next_token;
        self.next_token += 1;
        self.spec.board.tally(self.spec.slot).accepted();
        (token, Conn::new(stream, peer, self.wire.first_stage(peer), listener))
    }

    /// At a stop the master asked for: take the connections queued on the
    /// sockets (their clients sent before the stop), as far as there is
    /// room, to serve them with the rest; the master then stops the
    /// sockets listening (on a final stop), and the queue would be reset.
    fn take_queued_connections(&mut self) {
        for listener in 0..self.spec.listeners.len() {
            // Room is all that counts here, not `can_accept`: that says no
            // once `stopping_since` is set, which it is at both takes of
            // `begin_stop`, so nothing was taken and the last worker's
            // shutdown reset what was queued (a request sent, then RST).
            while self.conns.len() + self.away_count() < self.spec.cfg.worker_connections {
                let Ok((stream, peer)) = self.spec.listeners[listener].accept() else { break };
                let (token, conn) = self.new_conn(stream, peer, listener);
                // Driven at the next turn (this may be in a request).
                self.keep(token, conn);
                self.again.push(token);
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
        let next = if matches!(conn.state, ConnState::Lingering { .. }) {
            if conn.linger() {
                Next::Wait
            } else {
                Next::CloseNow
            }
        } else {
            self.drive(&mut conn)
        };
        match next {
            Next::Wait => self.keep(token, conn),
            Next::DriveAgain => {
                self.keep(token, conn);
                self.again.push(token);
            }
            Next::CloseNow => self.close_now(conn),
            Next::Linger => self.linger_and_close(token, conn),
            Next::Dispatch(incoming) => self.dispatch(token, conn, *incoming),
        }
    }

    /// Hand a connection and its request to the request threads. A
    /// connection not yet in the poll joins it only if it comes back to
    /// wait (input that came meanwhile is reported then).
    fn dispatch(&mut self, token: usize, conn: Conn, incoming: Incoming) {
        let keep_alive_allowed = self.admit();
        let Mode::Threads(away) = &mut self.mode else {
            unreachable!("only a worker with request threads dispatches")
        };
        away.conns.insert(token, conn.input != SocketInput::Drained);
        away.pool.submit(Job { token, conn, incoming, keep_alive_allowed });
    }

    /// Read a connection and decode its requests: serve them here, or
    /// hand the first to a request thread.
    fn drive(&mut self, conn: &mut Conn) -> Next {
        for turn in 0..REQUESTS_PER_TURN {
            // After a request, a socket last seen empty needs no read: input
            // that came since raised a poll event of its own (epoll(7) on
            // edge-triggered stream sockets), which brings the connection
            // back here.
            let nothing_new = turn > 0 && conn.input == SocketInput::Drained;
            if conn.input != SocketInput::Closed && !nothing_new {
                if let Err(e) = conn.read_available(self.max_head.saturating_add(1), &mut self.scratch) {
                    log::debug!("read failed: {e}");
                    return Next::CloseNow;
                }
            }
            let unparsed = conn.buf.len();
            let incoming = match self.wire.decode(&mut conn.stage, &mut conn.buf, conn.peer) {
                Ok(Parse::Complete(incoming)) => incoming,
                Ok(Parse::Partial) => return wait_for_head(conn),
                Err(Refusal::Status(e)) => {
                    conn.refuse(e, unparsed, self.spec.board.tally(self.spec.slot));
                    return Next::Linger;
                }
                Err(Refusal::Close(why)) => {
                    log::warn!("closing a connection from {}: {why}", conn.peer);
                    return Next::CloseNow;
                }
            };
            if let Mode::Threads(_) = self.mode {
                return Next::Dispatch(Box::new(incoming));
            }
            match self.serve_inline(conn, incoming) {
                After::KeepAlive => conn.park_idle(),
                After::Linger => return Next::Linger,
                After::Close => return Next::CloseNow,
            }
        }
        Next::DriveAgain
    }

    /// Close the connections whose deadline has passed.
    fn expire_connections(&mut self) {
        let now = Instant::now();
        let timers = self.timers();
        let expired: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.deadline(&timers).is_some_and(|d| d <= now)).map(|(t, _)| *t).collect();
        for t in expired {
            match self.conns.get(&t).map(|c| c.state) {
                Some(ConnState::ReadingHead { .. }) => {
                    let mut c = self.take_conn(t).expect("present: just looked it up");
                    // A slow client gets its 408 and the close at once.
                    let unparsed = c.buf.len();
                    c.refuse(HttpError::Timeout, unparsed, self.spec.board.tally(self.spec.slot));
                    self.close_now(c);
                }
                Some(ConnState::Fresh { .. } | ConnState::Idle { .. }) => self.expire_idle(t),
                Some(ConnState::Lingering { .. }) | None => self.close_parked(t),
            }
        }
    }

    /// Close a connection that is idle past its time (or at a stop), but
    /// first serve a request that arrived while the worker was busy with
    /// others: it was sent in good faith and must not be dropped.
    fn expire_idle(&mut self, token: usize) {
        self.on_readable(token);
        let now = Instant::now();
        let timers = self.timers();
        let expired = self.conns.get(&token).is_some_and(|c| {
            c.between_requests() && c.buf.is_empty() && c.deadline(&timers).is_some_and(|d| d <= now)
        });
        if expired {
            let conn = self.take_conn(token).expect("present: just looked it up");
            self.linger_and_close(token, conn);
        }
    }

    /// Keep a connection until the poll reports it; its held response, if
    /// any, joins the held list.
    fn keep(&mut self, token: usize, mut conn: Conn) {
        if !self.watch(token, &mut conn) {
            self.close_now(conn);
            return;
        }
        if let (Mode::Inline(holding), false) = (&self.mode, conn.unsent.is_empty()) {
            holding.held.hold(token, &conn.stream, std::mem::take(&mut conn.unsent));
            conn.held_in_turn = holding.turn;
        }
        self.conns.insert(token, conn);
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

    /// Close a parked connection at once.
    fn close_parked(&mut self, token: usize) {
        if let Some(c) = self.take_conn(token) {
            self.close_now(c);
        }
    }

    /// Close a connection at once: send what it holds, shut it down (so
    /// the client sees the end even while another process holds a copy of
    /// the socket, a child the app forked during the request), take it out
    /// of the poll if it is there, and close the descriptor (dropping it).
    fn close_now(&mut self, mut conn: Conn) {
        if !conn.unsent.is_empty() {
            let _ = conn.send_unsent(self.spec.cfg.timeout);
        }
        if conn.watched {
            let _ = self.poll.registry().deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
        }
        conn.stream.shutdown();
    }

    /// After the response that ends a connection: shut down our side and
    /// read what the client still sends before closing, so that input
    /// arriving at a closed socket cannot reset the connection (and
    /// destroy the response) before the client has read it.
    fn linger_and_close(&mut self, token: usize, mut conn: Conn) {
        if !conn.unsent.is_empty() && conn.send_unsent(self.spec.cfg.timeout).is_err() {
            self.close_now(conn);
            return;
        }
        conn.start_lingering();
        if conn.linger() {
            self.keep(token, conn);
        } else {
            self.close_now(conn);
        }
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = crate::logging::reopen_error_log() {
            log::error!("{e}");
        }
        super::enable_faulthandler();
        super::capture_output(self.spec.cfg);
        if let Some(l) = &self.handler.access_log {
            if let Err(e) = l.reopen() {
                log::error!("{e}");
            }
        }
    }
}

/// Wait for the rest of a request head (or PROXY header), unless the
/// client has stopped sending.
fn wait_for_head(conn: &mut Conn) -> Next {
    if conn.input == SocketInput::Closed {
        if !conn.buf.is_empty() {
            log::debug!("client closed with an incomplete request");
        }
        return Next::CloseNow;
    }
    conn.head_arriving();
    Next::Wait
}

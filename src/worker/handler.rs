//! Serving one request whose head is parsed: the part of a worker's work
//! that its main thread does itself (`--threads 1`) or hands to a request
//! thread. A [`Handler`] is shared by every thread of a worker and never
//! changes after boot; the connection it serves belongs to the calling
//! thread for the length of the call.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::conn::Conn;
use crate::config::Config;
use crate::logging::{statsd, AccessInfo, AccessLog};
use crate::net::{DeadlineIo, Stream};
use crate::sys::{Scoreboard, Served};
use crate::wire::Incoming;
use crate::wsgi::{self, App, Exchange, Outcome};

/// What every thread of a worker needs to serve a request. All of it is
/// read-only after boot or guards itself: the config, the scoreboard
/// (atomics), the app (Python objects, used with the GIL held) and the
/// access log (a lock around its file).
pub(super) struct Handler<'a> {
    pub cfg: &'a Config,
    pub board: &'a Scoreboard,
    pub slot: usize,
    pub app: App,
    pub access_log: Option<AccessLog>,
}

/// What a served request leaves of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum After {
    /// It can carry another request; `conn.buf` holds the bytes that
    /// followed this one.
    KeepAlive,
    /// It ends, and the client may still be sending: close once it is
    /// done (lingering), since closing a socket with unread input resets
    /// it, which can destroy the response on its way.
    Linger,
    /// It ends, and the client will send nothing more: close at once.
    Close,
}

impl Handler<'_> {
    /// Serve `incoming` on `conn`: call the app, write its response, log
    /// it, and drain what the app left unread. `keep_alive_allowed` is the
    /// worker's say (not stopping, not its last request).
    ///
    /// With `hold`, a small whole response is left in `conn.unsent` for
    /// the caller to send (see the `hold` module). It is held across other
    /// connections' requests only: anything this connection does next
    /// (another request, draining a body) comes after it is sent.
    pub fn serve(&self, conn: &mut Conn, incoming: Incoming, keep_alive_allowed: bool, hold: bool) -> After {
        let cfg = self.cfg;
        if !conn.unsent.is_empty() && conn.send_unsent(cfg.timeout).is_err() {
            return After::Close;
        }
        // For the master to name the request, should the worker die in it.
        let target = &incoming.request.target;
        let path = target.split_once('?').map_or(target.as_str(), |(path, _)| path);
        self.board.note_request_line(self.slot, &incoming.request.method, path);
        let started = Instant::now();
        let keep_alive = incoming.request.keep_alive && cfg.keepalive.is_some() && keep_alive_allowed;
        let ex = Exchange {
            incoming: &incoming,
            listener: conn.listener,
            stream: &conn.stream,
            // The buffer goes to the body reader whole (its bytes past the
            // head are the body's start, read in place) and comes back in
            // `after_response`.
            leftover: std::mem::take(&mut conn.buf),
            timeout: cfg.timeout,
            keep_alive,
            body_limit: cfg.limit_request_body,
            date: http_date(),
            remote_cache: &mut conn.remote_strings,
            hold: hold.then(|| std::mem::take(&mut conn.unsent)),
        };
        let mut outcome = Python::attach(|py| wsgi::handle(py, &self.app, ex));
        let duration = started.elapsed();
        if let Some(log) = &self.access_log {
            log.log(&AccessInfo {
                peer: &incoming.client,
                request: &incoming.request,
                status: &outcome.status,
                response_headers: &outcome.headers,
                body_bytes: outcome.body_bytes,
                duration,
            });
        }
        statsd::request(duration, &outcome.status);
        if outcome.hooked.is_some() {
            // As Gunicorn: post_request once the response is out and logged.
            Python::attach(|py| self.app.finish_request(py, &mut outcome));
        }
        self.after_response(conn, &incoming, outcome, duration)
    }

    /// Take back the connection's buffer and held response, drain what
    /// the app left of the body, count the request, and say what the
    /// connection is good for.
    fn after_response(&self, conn: &mut Conn, incoming: &Incoming, outcome: Outcome, duration: Duration) -> After {
        conn.unsent = outcome.held;
        // A response that promised keep-alive keeps it, even when the
        // worker is stopping by now: the client may already be sending its
        // next request, which the stopping worker still serves (within
        // its drain, with `Connection: close`) rather than drop.
        let mut reusable = outcome.reusable;
        let mut body = outcome.body;
        if reusable && !body.is_complete() {
            // The response goes out before the client is made to wait.
            if !conn.unsent.is_empty() && conn.send_unsent(self.cfg.timeout).is_err() {
                return After::Close;
            }
            // The app left body unread: drain a bounded amount, in bounded
            // time, so the next request starts where it should, or give up
            // on the connection. A client still waiting for `100 Continue`
            // may never send its body: only what is already here counts.
            let wait = if outcome.continue_unsent { Duration::ZERO } else { DRAIN_TIME };
            let mut io = DrainIo { stream: &conn.stream, until: Instant::now() + wait };
            reusable = matches!(body.drain(&mut io, DRAIN_LIMIT), Ok(true));
        }
        self.board.tally(self.slot).record(&Served {
            status: outcome.code,
            duration: Some(duration),
            bytes_in: incoming.request.head_len as u64 + body.decoded(),
            bytes_out: outcome.bytes_out,
        });
        // Bytes past the body (a pipelined request) stay in the buffer,
        // which keeps its allocation for the next request.
        let body_complete = body.is_complete();
        conn.buf = body.into_leftover();
        if reusable {
            return After::KeepAlive;
        }
        // A one-shot front end (uwsgi), or a client that asked to close and
        // has nothing unread left, sends nothing more.
        let client_done = body_complete
            && conn.buf.is_empty()
            && (incoming.one_shot || (!incoming.request.keep_alive && nothing_unread(&conn.stream)));
        if client_done {
            After::Close
        } else {
            After::Linger
        }
    }
}

/// Most body bytes read and thrown away to keep a connection alive.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// Longest time spent draining an unread body.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads for draining an unread body: each waits at most until `until`.
struct DrainIo<'a> {
    stream: &'a Stream,
    until: Instant,
}

impl Read for DrainIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        match (&*self.stream).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && left.is_zero() => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "drain time is up"))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                DeadlineIo { stream: self.stream, timeout: Some(left) }.read(buf)
            }
            other => other,
        }
    }
}

/// The `Date` header value, formatted once per second (per thread). The
/// second comes from the coarse real-time clock, the cheapest to read.
pub(super) fn http_date() -> std::sync::Arc<str> {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, std::sync::Arc<str>)> =
            std::cell::RefCell::new((i64::MIN, std::sync::Arc::from("")));
    }
    let second = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE).map_or_else(
        |_| chrono::Utc::now().timestamp(),
        |t| t.tv_sec(),
    );
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != second {
            let text = chrono::DateTime::from_timestamp(second, 0)
                .unwrap_or_default()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            *c = (second, std::sync::Arc::from(text));
        }
        c.1.clone()
    })
}

/// True when the socket holds no unread input (one read that does not
/// wait; a byte it takes is dropped, as lingering would drop it).
fn nothing_unread(stream: &Stream) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match (&*stream).read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

//! Serving one request whose head is parsed: the part of a worker's work
//! that its main thread does itself (`--threads 1`) or hands to a request
//! thread. A [`Handler`] is shared by every thread of a worker and never
//! changes after boot; the connection it serves belongs to the calling
//! thread for the length of the call.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::{start_lingering, Conn};
use crate::config::{Config, HeaderMap, Protocol};
use crate::http::response::error_response;
use crate::http::{self, HttpError};
use crate::logging::{AccessInfo, AccessLog};
use crate::net::{DeadlineIo, Peer, Stream};
use crate::sys::Scoreboard;
use crate::wsgi::{self, App, Exchange};

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

impl Handler<'_> {
    /// Serve `request` on `conn`: call the app, write its response, log
    /// it, and drain what the app left unread. `keep_alive_allowed` is the
    /// worker's say (not stopping, not its last request). Returns whether
    /// the connection can carry another request; `conn.buf` then holds
    /// the bytes after this request's body.
    ///
    /// With `hold`, a small whole response is left in `conn.unsent` for
    /// the caller to send (see the `hold` module). It is held across other
    /// connections' requests only: anything this connection does next
    /// (another request, draining a body) comes after it is sent.
    pub fn serve(&self, conn: &mut Conn, request: http::Request, keep_alive_allowed: bool, hold: bool) -> bool {
        let cfg = self.cfg;
        conn.client_done = false;
        if !conn.unsent.is_empty() && send_unsent(conn, cfg.timeout).is_err() {
            return false;
        }
        if cfg.header_map == HeaderMap::Refuse && request.headers.iter().any(|h| h.name.contains('_')) {
            refuse(conn, HttpError::UnderscoreInHeaderName);
            return false;
        }
        let uwsgi = cfg.protocol == Protocol::Uwsgi;
        let https = if uwsgi {
            // The front end's own variables say; the client's X-Forwarded-*
            // headers reach rwsgi untouched through uwsgi_params.
            crate::uwsgi::is_https(&request)
        } else if cfg.forwarded_allow.allows(conn.peer.ip()) {
            // Scheme headers count only from a trusted proxy.
            match http::forwarded_scheme_is_secure(&request) {
                Ok(secure) => secure.unwrap_or(false),
                Err(e) => {
                    refuse(conn, e);
                    return false;
                }
            }
        } else {
            false
        };
        // A uwsgi front end names the client in REMOTE_ADDR/REMOTE_PORT.
        if uwsgi {
            if let Some(addr) = uwsgi_client(&request) {
                conn.remote = Peer::Tcp(addr);
            }
        }
        // Timed only for the access log.
        let started = self.access_log.as_ref().map(|_| Instant::now());
        // The buffer goes to the body reader whole (its bytes past the
        // head are the body's start, read in place) and comes back below.
        let leftover = std::mem::take(&mut conn.buf);
        let keep_alive = request.keep_alive && cfg.keepalive.is_some() && keep_alive_allowed;
        let ex = Exchange {
            request: &request,
            peer: &conn.remote,
            listener: conn.listener,
            stream: &conn.stream,
            leftover,
            leftover_start: request.head_len,
            timeout: cfg.timeout,
            keep_alive,
            https,
            underscore_headers: cfg.header_map == HeaderMap::Dangerous,
            close_delimited: uwsgi,
            date: http_date(),
            remote_cache: &mut conn.remote_strings,
            hold: hold.then(|| std::mem::take(&mut conn.unsent)),
        };
        let outcome = Python::attach(|py| wsgi::handle(py, &self.app, ex));
        if let Some(log) = &self.access_log {
            log.log(&AccessInfo {
                peer: &conn.remote,
                request: &request,
                status: &outcome.status,
                response_headers: &outcome.headers,
                body_bytes: outcome.body_bytes,
                duration: started.map(|s| s.elapsed()).unwrap_or_default(),
            });
        }
        conn.unsent = outcome.held;
        let mut reusable = outcome.reusable && !crate::sys::stop_requested();
        let mut body = outcome.body;
        if reusable && !body.is_complete() {
            // The response goes out before the client is made to wait.
            if !conn.unsent.is_empty() && send_unsent(conn, cfg.timeout).is_err() {
                return false;
            }
            // The app left body unread: drain a bounded amount, in bounded
            // time, so the next request starts where it should, or give up
            // on the connection. A client still waiting for `100 Continue`
            // may never send its body: only what is already here counts.
            let wait = if outcome.continue_unsent { Duration::ZERO } else { DRAIN_TIME };
            let mut io = DrainIo { stream: &conn.stream, until: Instant::now() + wait };
            reusable = matches!(body.drain(&mut io, DRAIN_LIMIT), Ok(true));
        }
        // Bytes past the body (a pipelined request) stay in the buffer,
        // which keeps its allocation for the next request.
        let body_complete = body.is_complete();
        let rest = body.into_leftover();
        // A uwsgi front end (one request per connection), or a client that
        // asked to close and has nothing unread left, sends nothing more.
        // Only then may the connection close without lingering: closing a
        // socket with unread input resets it, which can destroy the
        // response on its way.
        conn.client_done = body_complete
            && rest.is_empty()
            && (uwsgi || (!request.keep_alive && nothing_unread(&conn.stream)));
        conn.buf = rest;
        reusable
    }
}

/// Send the response bytes held on `conn`, waiting up to `timeout`.
pub(super) fn send_unsent(conn: &mut Conn, timeout: Option<Duration>) -> io::Result<()> {
    let result = DeadlineIo { stream: &conn.stream, timeout }.write_all(&conn.unsent);
    conn.unsent.clear();
    result
}

/// Answer a bad request with its status, then linger and close.
pub(super) fn refuse(conn: &mut Conn, e: HttpError) {
    log::debug!("bad request from {}: {}", conn.peer, e.describe());
    let mut io = DeadlineIo { stream: &conn.stream, timeout: Some(Duration::from_secs(1)) };
    // A response held from the request before goes first.
    let _ = io.write_all(&conn.unsent).and_then(|()| io.write_all(&error_response(e, &http_date())));
    conn.unsent.clear();
    start_lingering(conn);
}

/// The client a uwsgi front end names, when REMOTE_ADDR is an IP address
/// (REMOTE_PORT may be empty: nginx's realip module knows no port).
fn uwsgi_client(request: &http::Request) -> Option<std::net::SocketAddr> {
    let ip = std::str::from_utf8(request.param("REMOTE_ADDR")?).ok()?.parse().ok()?;
    let port = request.param("REMOTE_PORT").and_then(|p| std::str::from_utf8(p).ok()?.parse().ok()).unwrap_or(0);
    Some(std::net::SocketAddr::new(ip, port))
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

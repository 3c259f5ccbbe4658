//! One client connection as a worker holds it: the socket, the bytes read
//! ahead of the request that uses them, where the connection stands (a
//! [`ConnState`] carrying the instants that matter), and its deadline,
//! computed in one place ([`Conn::deadline`]) from that state.
//!
//! A connection belongs to exactly one thread at a time: the worker's
//! main thread while it waits in the poll, or the request thread serving
//! its request (see `threads`).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::response::error_response;
use crate::http::HttpError;
use crate::net::{DeadlineIo, Peer, Stream};
use crate::sys::tally::{Served, Tally};
use crate::wire::Stage;
use crate::wsgi;

use super::handler::http_date;

/// A connection between requests, or with one in progress.
pub(super) struct Conn {
    pub stream: Arc<Stream>,
    /// The socket's peer: what trust decisions look at.
    pub peer: Peer,
    /// How far its bytes have been decoded (a PROXY header due, or the
    /// client requests come from).
    pub stage: Stage,
    /// Which of the worker's listeners accepted it.
    pub listener: usize,
    /// Bytes read and not used yet: a partial head, or what followed the
    /// last request (a pipelined one).
    pub buf: Vec<u8>,
    pub state: ConnState,
    /// What the last read of the socket found.
    pub input: SocketInput,
    /// The client's environ strings, made at its first request.
    pub remote_strings: wsgi::RemoteCache,
    /// The socket is in the poll. A connection is added only when it has
    /// to wait: one served and closed on its first read (uwsgi, HTTP/1.0)
    /// never is.
    pub watched: bool,
    /// A response held back, to go out at the end of the worker's turn
    /// (see `hold`) or before anything else is written.
    pub unsent: Vec<u8>,
    /// The turn in which its response joined the held list (only then can
    /// it still be there: every turn ends by emptying the list).
    pub held_in_turn: u64,
}

/// Where a connection stands, with the instants its deadline counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnState {
    /// Accepted at `since`; nothing of a request received yet.
    Fresh { since: Instant },
    /// A request head (or PROXY header) is arriving; its first byte came
    /// at `since`.
    ReadingHead { since: Instant },
    /// Between requests on a keep-alive connection, since its last
    /// response.
    Idle { since: Instant },
    /// The last response is out and our side is shut down (since
    /// `since`); what the client still sends is read and dropped until it
    /// closes, so that closing with unread input (a TCP reset) cannot
    /// destroy the response on its way to the client. `last_input` is the
    /// last time it sent something.
    Lingering { since: Instant, last_input: Instant },
}

/// What the last read of a connection's socket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SocketInput {
    /// Not read empty: more may be waiting.
    Unknown,
    /// Read until empty: anything newer raises a poll event.
    Drained,
    /// The client shut down its sending side: serve what is buffered,
    /// then close.
    Closed,
}

/// What bounds a connection's time besides its own state.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    /// `--timeout`: the longest wait for a request head.
    pub timeout: Option<Duration>,
    /// `--keep-alive`: the longest wait between requests.
    pub keepalive: Option<Duration>,
    /// When the worker began to stop, if it has.
    pub stopping_since: Option<Instant>,
    /// How long after the stop an idle keep-alive connection is still kept
    /// ([`drain_window`]).
    pub drain: Duration,
}

/// How long a stopping worker keeps an idle keep-alive connection open
/// (within its `--keep-alive`): until shortly before `--graceful-timeout`
/// runs out, never less than [`STOP_GRACE`]. Closing an idle connection
/// races the client's next request on it, which a balancer cannot retry
/// when it is a POST; kept open, the connection is either closed by the
/// client (a balancer that took the host out, or its own idle timeout) or
/// carries one more request, answered with `Connection: close`. The worker
/// closes what is left itself, lingering as for any close, and still ends
/// a second before the master's kill.
pub(super) fn drain_window(graceful_timeout: Duration) -> Duration {
    graceful_timeout.saturating_sub(LINGER + Duration::from_secs(1)).max(STOP_GRACE)
}

/// How long a connection that sent nothing is kept after a stop begins
/// (and an idle one, when the worker recycles itself).
pub(super) const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long a closing connection may go quiet before it is closed.
const LINGER: Duration = Duration::from_secs(2);
/// The longest a closing connection's late input is read and dropped.
const LINGER_TOTAL: Duration = Duration::from_secs(30);

impl Conn {
    /// A connection just accepted from `peer` on `listener`.
    pub fn new(stream: Stream, peer: Peer, stage: Stage, listener: usize) -> Conn {
        Conn {
            stream: Arc::new(stream),
            peer,
            stage,
            listener,
            buf: Vec::new(),
            state: ConnState::Fresh { since: Instant::now() },
            input: SocketInput::Unknown,
            remote_strings: None,
            watched: false,
            unsent: Vec::new(),
            held_in_turn: 0,
        }
    }

    /// When the worker closes the connection unless something happens
    /// first; `None` for never. The one place a deadline is decided.
    pub fn deadline(&self, t: &Timers) -> Option<Instant> {
        match self.state {
            // Sent nothing yet: a short grace, for a request on its way.
            ConnState::Fresh { since } => cut_at_stop(t.timeout.map(|d| since + d), t, |stop| since.max(stop) + STOP_GRACE),
            // A head in progress is let finish, stopping or not.
            ConnState::ReadingHead { since } => t.timeout.map(|d| since + d),
            ConnState::Idle { since } => cut_at_stop(t.keepalive.map(|k| since + k), t, |stop| stop + t.drain),
            // Each read earns the client another LINGER, up to LINGER_TOTAL.
            ConnState::Lingering { since, last_input } => Some((last_input + LINGER).min(since + LINGER_TOTAL)),
        }
    }

    /// The state is a wait for the first or next request (not a head in
    /// progress, not a close under way).
    pub fn between_requests(&self) -> bool {
        matches!(self.state, ConnState::Fresh { .. } | ConnState::Idle { .. })
    }

    /// Wait for the next request on a keep-alive connection.
    pub fn park_idle(&mut self) {
        self.state = ConnState::Idle { since: Instant::now() };
    }

    /// Part of a head has come: its time starts with its first byte.
    pub fn head_arriving(&mut self) {
        if !matches!(self.state, ConnState::ReadingHead { .. }) && !self.buf.is_empty() {
            self.state = ConnState::ReadingHead { since: Instant::now() };
        }
    }

    /// Read without blocking what the socket holds, up to `limit` buffered
    /// bytes (through `scratch`), and note what the read found.
    pub fn read_available(&mut self, limit: usize, scratch: &mut [u8]) -> io::Result<()> {
        self.input = fill_nonblocking(&self.stream, &mut self.buf, limit, scratch)?;
        Ok(())
    }

    /// Send the response bytes held on the connection, waiting up to
    /// `timeout`.
    pub fn send_unsent(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let result = DeadlineIo { stream: &self.stream, timeout }.write_all(&self.unsent);
        self.unsent.clear();
        result
    }

    /// Answer a bad request (`bytes_in` bytes read of it) with its
    /// status, then linger; counted as a request answered.
    pub fn refuse(&mut self, e: HttpError, bytes_in: usize, tally: &Tally) {
        log::debug!("bad request from {}: {}", self.peer, e.describe());
        let mut io = DeadlineIo { stream: &self.stream, timeout: Some(Duration::from_secs(1)) };
        // A response held from the request before goes first.
        let response = error_response(e, &http_date());
        let _ = io.write_all(&self.unsent).and_then(|()| io.write_all(&response));
        self.unsent.clear();
        self.start_lingering();
        let served = Served { status: e.status().0, duration: None, bytes_in: bytes_in as u64, bytes_out: response.len() as u64 };
        tally.record(&served);
    }

    /// Shut down our sending side and wait (in the poll) for the client
    /// to close, dropping whatever it still sends.
    pub fn start_lingering(&mut self) {
        if matches!(self.state, ConnState::Lingering { .. }) {
            return;
        }
        self.stream.shutdown_write();
        self.buf = Vec::new();
        let now = Instant::now();
        self.state = ConnState::Lingering { since: now, last_input: now };
    }

    /// Read and drop a lingering connection's input: false once the
    /// client has closed (or the socket failed).
    pub fn linger(&mut self) -> bool {
        let mut sink = [0u8; 16 * 1024];
        let open = loop {
            match (&*self.stream).read(&mut sink) {
                Ok(0) => break false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if let ConnState::Lingering { last_input, .. } = &mut self.state {
            *last_input = Instant::now();
        }
        open
    }
}

/// `deadline`, cut once the worker stops to what `after_stop` gives for
/// the moment of the stop.
fn cut_at_stop(deadline: Option<Instant>, t: &Timers, after_stop: impl FnOnce(Instant) -> Instant) -> Option<Instant> {
    let Some(stop) = t.stopping_since else { return deadline };
    let cut = after_stop(stop);
    Some(deadline.map_or(cut, |d| d.min(cut)))
}

/// Read without blocking until the socket is drained or `buf` holds
/// `limit` bytes, through `chunk`. A read shorter than asked for means
/// the socket's queue is empty (a stream socket), so no second read is
/// spent to hear EAGAIN.
fn fill_nonblocking(stream: &Stream, buf: &mut Vec<u8>, limit: usize, chunk: &mut [u8]) -> io::Result<SocketInput> {
    while buf.len() < limit {
        match (&*stream).read(chunk) {
            Ok(0) => return Ok(SocketInput::Closed),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    return Ok(SocketInput::Drained);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(SocketInput::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(SocketInput::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_in(state: ConnState) -> Conn {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut c = Conn::new(Stream::Unix(ours), Peer::Unix, Stage::Requests(Peer::Unix), 0);
        c.state = state;
        c
    }

    #[test]
    fn deadlines_follow_the_state() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let timers = Timers { timeout: Some(s(30)), keepalive: Some(s(5)), stopping_since: None, drain: s(29) };
        assert_eq!(conn_in(ConnState::Fresh { since: t0 }).deadline(&timers), Some(t0 + s(30)));
        assert_eq!(conn_in(ConnState::ReadingHead { since: t0 }).deadline(&timers), Some(t0 + s(30)));
        assert_eq!(conn_in(ConnState::Idle { since: t0 }).deadline(&timers), Some(t0 + s(5)));
        let lingering = ConnState::Lingering { since: t0, last_input: t0 + s(29) };
        assert_eq!(conn_in(lingering).deadline(&timers), Some(t0 + s(30)), "capped at LINGER_TOTAL");
        let lingering = ConnState::Lingering { since: t0, last_input: t0 + s(1) };
        assert_eq!(conn_in(lingering).deadline(&timers), Some(t0 + s(3)));
        let unbounded = Timers { timeout: None, keepalive: None, stopping_since: None, drain: s(29) };
        assert_eq!(conn_in(ConnState::Fresh { since: t0 }).deadline(&unbounded), None);
        assert_eq!(conn_in(ConnState::Idle { since: t0 }).deadline(&unbounded), None);
    }

    #[test]
    fn a_stop_gives_fresh_connections_a_grace_and_idle_ones_the_drain() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let stop = t0 + s(10);
        let timers = Timers { timeout: Some(s(30)), keepalive: Some(s(75)), stopping_since: Some(stop), drain: s(9) };
        // A connection that sent nothing: the short grace, from the stop.
        assert_eq!(conn_in(ConnState::Fresh { since: t0 }).deadline(&timers), Some(stop + STOP_GRACE));
        // Fresh after the stop (handed over, say): from then.
        let later = stop + s(3);
        assert_eq!(conn_in(ConnState::Fresh { since: later }).deadline(&timers), Some(later + STOP_GRACE));
        // An idle keep-alive connection stays open through the drain, so the
        // client closes it or sends one more request (answered with close).
        assert_eq!(conn_in(ConnState::Idle { since: t0 }).deadline(&timers), Some(stop + s(9)));
        assert_eq!(conn_in(ConnState::Idle { since: later }).deadline(&timers), Some(stop + s(9)));
        // A shorter wait of its own stays.
        let short = Timers { keepalive: Some(s(1)), ..timers };
        assert_eq!(conn_in(ConnState::Idle { since: stop - s(1) }).deadline(&short), Some(stop));
        // Without a keep-alive limit the drain still bounds it.
        let none = Timers { keepalive: None, ..timers };
        assert_eq!(conn_in(ConnState::Idle { since: t0 }).deadline(&none), Some(stop + s(9)));
        // A head in progress is let finish.
        assert_eq!(conn_in(ConnState::ReadingHead { since: t0 }).deadline(&timers), Some(t0 + s(30)));
    }

    #[test]
    fn the_drain_leaves_time_to_linger_before_the_graceful_timeout() {
        let s = Duration::from_secs;
        assert_eq!(drain_window(s(30)), s(27));
        assert_eq!(drain_window(s(3)), STOP_GRACE);
        assert_eq!(drain_window(Duration::ZERO), STOP_GRACE);
    }
}

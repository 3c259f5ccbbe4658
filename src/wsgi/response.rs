//! The state of one response: what `start_response` set, whether the head
//! is out, and the body encoder. Python-free, so the socket writes can run
//! detached.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::http::response::{is_hop_by_hop, write_head, BodyEncoder, ResponseFraming};
use crate::http::{is_field_value, is_token, Version};
use crate::net::{DeadlineIo, SpillIo, Stream};
use std::io::Write as _;
use super::objects::Continue;

/// One response in the making.
pub struct ResponseState {
    /// `None` once the request is over: a `write()` the app kept fails.
    pub stream: Option<Arc<Stream>>,
    /// The request's `Expect: 100-continue`, forfeited when the head goes out.
    pub expect: Arc<Continue>,
    pub timeout: Option<Duration>,
    pub version: Version,
    /// The body may not be chunked even on HTTP/1.1: a uwsgi front end
    /// reads the response to the close.
    pub close_delimited: bool,
    pub is_head: bool,
    /// The connection may stay open, as far as the request and server go.
    pub keep_alive: bool,
    pub date: Arc<str>,
    /// `200 OK`, once `start_response` ran.
    pub status: Option<String>,
    pub code: u16,
    pub headers: Vec<(String, String)>,
    content_length: Option<u64>,
    /// The app sent `Connection: close`.
    app_wants_close: bool,
    pub head_sent: bool,
    encoder: Option<BodyEncoder>,
    /// A write failed: the client is gone or too slow.
    pub broken: bool,
    /// The body is ended; nothing more may be written (a `write()` from
    /// the iterable's `close()` would land after the last chunk).
    finished: bool,
    /// Bytes a send that does not wait could not put on the socket (or
    /// held back); they go out first at the next send that waits.
    pending: Vec<u8>,
    /// Hold the response back instead of writing it, when its first piece
    /// completes the body (a Content-Length met, or no body due) and the
    /// whole of it stays under [`HOLD_MAX`]: the worker sends it after its
    /// turn (see the worker's `hold` module). Off for good once anything
    /// of it is written (or it outgrows that).
    hold: bool,
}

/// The most a held response may grow to before it goes out as usual.
pub const HOLD_MAX: usize = 16 * 1024;

impl ResponseState {
    pub fn new(
        stream: Arc<Stream>,
        expect: Arc<Continue>,
        timeout: Option<Duration>,
        version: Version,
        is_head: bool,
        keep_alive: bool,
        date: Arc<str>,
    ) -> Self {
        ResponseState {
            stream: Some(stream),
            expect,
            timeout,
            version,
            close_delimited: false,
            is_head,
            keep_alive,
            date,
            status: None,
            code: 0,
            headers: Vec::new(),
            content_length: None,
            app_wants_close: false,
            head_sent: false,
            pending: Vec::new(),
            hold: false,
            encoder: None,
            broken: false,
            finished: false,
        }
    }

    /// Hold the response back (see `hold`), in `buf` (empty; passed in
    /// to reuse its allocation).
    pub fn hold_in(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.pending = buf;
        self.hold = true;
    }

    /// Record what `start_response` was given, validated. Hop-by-hop
    /// headers are dropped (PEP 3333 forbids them to apps; the server owns
    /// the connection); `Connection: close` is honoured by closing.
    pub fn set_response(&mut self, status: String, code: u16, headers: Vec<(String, String)>) -> Result<(), String> {
        let mut kept = Vec::with_capacity(headers.len());
        let mut content_length = None;
        let mut wants_close = false;
        for (name, value) in headers {
            if !is_token(name.as_bytes()) {
                return Err(format!("invalid header name {name:?}"));
            }
            if !value.chars().all(|c| (c as u32) < 256) || !is_field_value(value.as_bytes()) {
                return Err(format!("invalid value for header {name}: control characters or non-latin-1 text"));
            }
            if is_hop_by_hop(&name) {
                if name.eq_ignore_ascii_case("connection") {
                    wants_close |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
                } else {
                    log::warning_once(&name);
                }
                continue;
            }
            if name.eq_ignore_ascii_case("content-length") {
                // RFC 9110 §8.6: 1*DIGIT; two different lengths would let a
                // proxy and its client disagree on where the body ends.
                let digits = value.trim_matches([' ', '\t']);
                let n = Some(digits)
                    .filter(|d| !d.is_empty() && d.len() <= 19 && d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse::<u64>().ok())
                    .ok_or_else(|| format!("invalid Content-Length {value:?}"))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                content_length = Some(n);
            }
            kept.push((name, value));
        }
        self.status = Some(status);
        self.code = code;
        self.headers = kept;
        self.content_length = content_length;
        self.app_wants_close = wants_close;
        Ok(())
    }

    /// Set Content-Length when the whole body is known before the head
    /// goes out (a one-item list) and the app gave none. Not on a status
    /// that has no body (RFC 9110 §8.6), and not on an empty HEAD body,
    /// which says nothing of the GET body's length.
    pub fn set_known_length(&mut self, len: u64) {
        let bodiless = (100..200).contains(&self.code) || self.code == 204 || self.code == 304;
        let empty_head = self.is_head && len == 0;
        if self.content_length.is_some() || self.head_sent || bodiless || empty_head {
            return;
        }
        self.content_length = Some(len);
        self.headers.push(("Content-Length".into(), len.to_string()));
    }

    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Send body data, with the head first if it is not out yet.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let stream = self.writable()?;
        // The response goes out from here on; nothing of it is held.
        self.hold = false;
        let head = self.take_head();
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = self.flush_pending(&mut io).and_then(|()| match self.encoder.as_mut() {
            Some(enc) => enc.write(&mut io, &head, data),
            None => Ok(()),
        });
        self.note(result)
    }

    /// [`ResponseState::send`] without waiting on the socket, for a caller
    /// that holds the GIL: what the socket cannot take at once is kept, in
    /// order, for the next send that waits. True when all of it went out
    /// (or is held back).
    pub fn send_without_waiting(&mut self, data: &[u8]) -> io::Result<bool> {
        let stream = self.writable()?;
        let head = self.take_head();
        // Held only once the app has given the whole body: a piece of a
        // streamed body goes out as it comes, however long the next takes.
        let whole = self.encoder.as_ref().is_some_and(|e| e.completed_by(data.len()));
        self.hold &= whole && self.pending.len() + head.len() + data.len() <= HOLD_MAX;
        let result = match self.encoder.as_mut() {
            // Held: into `pending` (a Vec, so it cannot fail).
            Some(enc) if self.hold => enc.write(&mut self.pending, &head, data),
            Some(enc) => enc.write(&mut SpillIo { stream: &stream, spill: &mut self.pending }, &head, data),
            None => Ok(()),
        };
        self.note(result)?;
        Ok(self.hold || self.pending.is_empty())
    }

    /// Send what [`ResponseState::send_without_waiting`] kept, waiting as
    /// long as the timeout allows.
    pub fn flush(&mut self) -> io::Result<()> {
        self.send(b"")
    }

    /// The stream, if the response may still be written to.
    fn writable(&self) -> io::Result<Arc<Stream>> {
        if self.status.is_none() {
            return Err(io::Error::other("write() before start_response()"));
        }
        if self.finished {
            return Err(finished());
        }
        self.stream.clone().ok_or_else(finished)
    }

    fn flush_pending(&mut self, io: &mut DeadlineIo<'_>) -> io::Result<()> {
        if !self.pending.is_empty() {
            io.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// End the body (sending the head first if the body was empty).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.hold = false;
        let stream = self.stream.clone().ok_or_else(finished)?;
        let head = self.take_head();
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = self.flush_pending(&mut io).and_then(|()| match self.encoder.as_mut() {
            Some(enc) => enc.finish(&mut io, &head),
            None => Ok(()),
        });
        self.note(result)
    }

    /// End the body when that takes no write (the head is out and the
    /// framing has no terminator); false when [`ResponseState::finish`]
    /// has to write. Lets the caller skip releasing the GIL for nothing.
    pub fn finish_without_write(&mut self) -> bool {
        if self.hold && !self.finished && self.stream.is_some() {
            let head = self.take_head();
            if self.pending.len() + head.len() > HOLD_MAX {
                // Too large a head to hold: kept for `finish` to send.
                self.hold = false;
                self.pending.extend_from_slice(&head);
                return false;
            }
            if let Some(enc) = self.encoder.as_mut() {
                // Into `pending`, a Vec: cannot fail.
                let _ = enc.finish(&mut self.pending, &head);
            }
            self.finished = true;
            return true;
        }
        let quiet = self.finished
            || (self.head_sent
                && self.pending.is_empty()
                && self.encoder.as_ref().is_some_and(|e| e.framing() != ResponseFraming::Chunked));
        self.finished |= quiet;
        quiet
    }

    /// Send the head now and the file's bytes with sendfile(2), up to the
    /// Content-Length when there is one. Only for Length and
    /// close-delimited framing (chunked needs framing around the data).
    pub fn send_file(&mut self, fd: std::os::fd::BorrowedFd<'_>, offset: i64, size: u64) -> io::Result<()> {
        self.send(b"")?;
        let stream = self.stream.clone().ok_or_else(finished)?;
        let Some(enc) = self.encoder.as_mut() else { return Ok(()) };
        let count = match enc.framing() {
            ResponseFraming::NoBody => 0,
            _ => enc.remaining().unwrap_or(size).min(size),
        };
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = io.sendfile(fd, offset, count).map(|n| enc.add_sent(n));
        self.note(result)
    }

    /// The framing the head will announce (computed, not yet sent).
    pub fn planned_framing(&self) -> ResponseFraming {
        let chunked_allowed = self.version == Version::Http11 && !self.close_delimited;
        ResponseFraming::choose(self.is_head, self.code, self.content_length, chunked_allowed)
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.encoder.as_ref().map_or(0, BodyEncoder::sent)
    }

    /// Whether the connection can carry another request: the head said so
    /// and the body went out whole.
    pub fn connection_reusable(&self) -> bool {
        self.keep_alive && !self.broken && self.encoder.as_ref().is_some_and(BodyEncoder::is_complete)
    }

    /// The held response, for the worker to send after its turn (one the
    /// app broke off included: the client sees it cut short, as it would
    /// unheld); empty when it went out already.
    pub fn take_held(&mut self) -> Vec<u8> {
        if self.hold {
            std::mem::take(&mut self.pending)
        } else {
            Vec::new()
        }
    }

    /// Build the head bytes once; empty after that.
    fn take_head(&mut self) -> Vec<u8> {
        if self.head_sent {
            return Vec::new();
        }
        self.expect.forfeit();
        let framing = self.planned_framing();
        self.keep_alive = self.keep_alive && !self.app_wants_close && framing.allows_keep_alive();
        let mut head = Vec::with_capacity(256);
        let status = self.status.as_deref().unwrap_or("500 Internal Server Error");
        write_head(&mut head, status, &self.headers, framing, self.version, self.keep_alive, &self.date);
        self.encoder = Some(BodyEncoder::new(framing));
        self.head_sent = true;
        head
    }

    fn note(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

fn finished() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the response is already finished")
}

/// Check a WSGI status line (`200 OK`) and return its code.
pub fn parse_status(status: &str) -> Result<u16, String> {
    if !status.chars().all(|c| u32::from(c) < 256) {
        return Err(format!("invalid status {status:?}: not latin-1"));
    }
    let bytes = status.as_bytes();
    let code_ok = bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit);
    let rest_ok = bytes.len() == 3 || bytes.get(3) == Some(&b' ');
    if !code_ok || !rest_ok || !is_field_value(bytes) || bytes.contains(&b'\t') {
        return Err(format!("invalid status {status:?}: want 'NNN Reason'"));
    }
    let code: u16 = status[..3].parse().map_err(|_| format!("invalid status {status:?}"))?;
    if code < 100 {
        return Err(format!("invalid status code {code}"));
    }
    Ok(code)
}

/// Logging helpers that keep one line per cause.
mod log {
    use std::collections::HashSet;
    use std::sync::Mutex;

    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

    /// Warn once per worker about a hop-by-hop header an app sets.
    pub fn warning_once(name: &str) {
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if warned.get_or_insert_with(HashSet::new).insert(name.to_ascii_lowercase()) {
            ::log::warn!("application set hop-by-hop header {name:?}; dropped (PEP 3333)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404"), Ok(404));
        assert_eq!(parse_status("599 Custom Thing"), Ok(599));
        assert_eq!(parse_status("200 Café"), Ok(200));
        for bad in ["", "20 OK", "2000 OK", "abc OK", "200OK", "200 OK\r\nX: y", "099 Low", "200 ✓"] {
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
    }
}

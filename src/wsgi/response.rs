//! The state of one response: what `start_response` set, whether the head
//! is out, and the body encoder. Python-free, so the socket writes can run
//! detached.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use super::objects::Continue;
use crate::http::response::{is_hop_by_hop, write_head, BodyEncoder, ResponseFraming};
use crate::http::{is_field_value, is_token, Version};
use crate::net::{DeadlineIo, SpillIo, Stream};

/// One response in the making.
pub struct ResponseState {
    /// `None` once the request is over: a `write()` the app kept fails.
    pub stream: Option<Arc<Stream>>,
    /// The request's `Expect: 100-continue`, forfeited when the head goes out.
    expect: Arc<Continue>,
    timeout: Option<Duration>,
    terms: RequestTerms,
    /// The connection may stay open, as far as the request and the server
    /// go; once the head is out, as far as the app and the framing go too.
    keep_alive: bool,
    date: Arc<str>,
    /// What `start_response` set; `None` until it is called.
    head: Option<AppHead>,
    /// The length of the head made from it, for the metrics.
    head_bytes: u64,
    writing: Writing,
    unsent: Unsent,
}

/// What a request decides about the framing of its response.
#[derive(Clone, Copy, Debug)]
pub struct RequestTerms {
    /// The request's HTTP version (`Connection: keep-alive` for 1.0).
    pub version: Version,
    /// A HEAD request: the response has no body.
    pub is_head: bool,
    /// The reader understands a chunked body: HTTP/1.1, and not a front
    /// end that reads the response to the close (uwsgi).
    pub chunked_allowed: bool,
}

/// What the app gave `start_response`, validated.
pub struct AppHead {
    /// `200 OK`.
    pub status: String,
    /// The status code, `200`.
    pub code: u16,
    /// The headers, hop-by-hop ones dropped.
    pub headers: Vec<(String, String)>,
    content_length: Option<u64>,
    /// The app sent `Connection: close`.
    wants_close: bool,
}

/// How far the response has gone out.
enum Writing {
    /// Nothing yet: the head goes out with the first body bytes.
    Head,
    /// The head is out; body bytes go through the encoder.
    Body(BodyEncoder),
    /// The body is ended; nothing more may be written (a `write()` from
    /// the iterable's `close()` would land after the last chunk).
    Finished(BodyEncoder),
    /// A write failed (the client is gone or too slow), or the app broke
    /// off after the head: the body stays cut short.
    Broken(BodyEncoder),
}

/// Response bytes that are not on the socket yet.
enum Unsent {
    /// What a send that does not wait could not put on the socket; it goes
    /// out first at the next send that waits.
    Spilled(Vec<u8>),
    /// The whole response so far, held back: when its first piece
    /// completes the body (a Content-Length met, or no body due) and it
    /// stays under [`HOLD_MAX`], the worker sends it after its turn (see
    /// the worker's `hold` module). Spilled for good once anything of it
    /// is written (or it outgrows that).
    Held(Vec<u8>),
}

/// The most a held response may grow to before it goes out as usual.
pub const HOLD_MAX: usize = 16 * 1024;

impl ResponseState {
    /// A response on `stream`; with `hold`, held back (see `Unsent::Held`)
    /// in that buffer, passed in to reuse its allocation.
    pub fn new(
        stream: Arc<Stream>,
        expect: Arc<Continue>,
        timeout: Option<Duration>,
        terms: RequestTerms,
        keep_alive: bool,
        date: Arc<str>,
        hold: Option<Vec<u8>>,
    ) -> Self {
        let unsent = match hold {
            Some(mut buf) => {
                buf.clear();
                Unsent::Held(buf)
            }
            None => Unsent::Spilled(Vec::new()),
        };
        ResponseState {
            stream: Some(stream),
            expect,
            timeout,
            terms,
            keep_alive,
            date,
            head: None,
            head_bytes: 0,
            writing: Writing::Head,
            unsent,
        }
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
                let n = parse_app_content_length(&value)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                content_length = Some(n);
            }
            kept.push((name, value));
        }
        self.head = Some(AppHead { status, code, headers: kept, content_length, wants_close });
        Ok(())
    }

    /// What `start_response` set, once it has been called.
    pub fn app_head(&self) -> Option<&AppHead> {
        self.head.as_ref()
    }

    /// Take what `start_response` set, once the request is over.
    pub fn take_app_head(&mut self) -> Option<AppHead> {
        self.head.take()
    }

    /// The head has gone out (or is held, to go out unchanged).
    pub fn head_sent(&self) -> bool {
        !matches!(self.writing, Writing::Head)
    }

    /// Set Content-Length when the whole body is known before the head
    /// goes out (a one-item list) and the app gave none. Not on a status
    /// that has no body (RFC 9110 §8.6), and not on an empty HEAD body,
    /// which says nothing of the GET body's length.
    pub fn set_known_length(&mut self, len: u64) {
        let head_sent = self.head_sent();
        let empty_head = self.terms.is_head && len == 0;
        let Some(head) = self.head.as_mut() else { return };
        let bodiless = (100..200).contains(&head.code) || head.code == 204 || head.code == 304;
        if head.content_length.is_some() || head_sent || bodiless || empty_head {
            return;
        }
        head.content_length = Some(len);
        head.headers.push(("Content-Length".into(), len.to_string()));
    }

    /// The app's Content-Length (or the one rwsgi set).
    pub fn content_length(&self) -> Option<u64> {
        self.head.as_ref().and_then(|h| h.content_length)
    }

    /// Send body data, with the head first if it is not out yet.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let stream = self.writable()?;
        // The response goes out from here on; nothing of it is held.
        self.unsent.unhold();
        let head = self.take_head();
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = self.unsent.flush(&mut io).and_then(|()| match &mut self.writing {
            Writing::Body(enc) => enc.write(&mut io, &head, data),
            _ => Ok(()),
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
        let Writing::Body(enc) = &mut self.writing else { return Ok(true) };
        // Held only once the app has given the whole body: a piece of a
        // streamed body goes out as it comes, however long the next takes.
        if !enc.completed_by(data.len()) || self.unsent.len() + head.len() + data.len() > HOLD_MAX {
            self.unsent.unhold();
        }
        let result = match &mut self.unsent {
            // Into a Vec: cannot fail.
            Unsent::Held(held) => enc.write(held, &head, data),
            Unsent::Spilled(spill) => enc.write(&mut SpillIo { stream: &stream, spill }, &head, data),
        };
        self.note(result)?;
        Ok(self.unsent.is_held() || self.unsent.len() == 0)
    }

    /// Send what [`ResponseState::send_without_waiting`] kept, waiting as
    /// long as the timeout allows.
    pub fn flush(&mut self) -> io::Result<()> {
        self.send(b"")
    }

    /// The stream, if the response may still be written to.
    fn writable(&self) -> io::Result<Arc<Stream>> {
        if self.head.is_none() {
            return Err(io::Error::other("write() before start_response()"));
        }
        if !matches!(self.writing, Writing::Head | Writing::Body(_)) {
            return Err(finished());
        }
        self.stream.clone().ok_or_else(finished)
    }

    /// End the body (sending the head first if the body was empty).
    pub fn finish(&mut self) -> io::Result<()> {
        if matches!(self.writing, Writing::Finished(_)) {
            return Ok(());
        }
        let stream = self.writable()?;
        self.unsent.unhold();
        let head = self.take_head();
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = self.unsent.flush(&mut io).and_then(|()| match &mut self.writing {
            Writing::Body(enc) => enc.finish(&mut io, &head),
            _ => Ok(()),
        });
        self.note(result)?;
        self.end_body();
        Ok(())
    }

    /// End the body when that takes no write (the head is out and the
    /// framing has no terminator, or the response is held); false when
    /// [`ResponseState::finish`] has to write. Lets the caller skip
    /// releasing the GIL for nothing.
    pub fn finish_without_write(&mut self) -> bool {
        match &self.writing {
            // Nothing more goes out of a broken response.
            Writing::Finished(_) | Writing::Broken(_) => return true,
            Writing::Head | Writing::Body(_) => {}
        }
        if self.unsent.is_held() && self.stream.is_some() && self.head.is_some() {
            let head = self.take_head();
            if self.unsent.len() + head.len() > HOLD_MAX {
                // Too large a head to hold: kept for `finish` to send.
                self.unsent.unhold();
                self.unsent.push(&head);
                return false;
            }
            if let (Writing::Body(enc), Unsent::Held(held)) = (&mut self.writing, &mut self.unsent) {
                // Into a Vec: cannot fail.
                let _ = enc.finish(held, &head);
            }
            self.end_body();
            return true;
        }
        let quiet = matches!(&self.writing, Writing::Body(enc) if enc.framing() != ResponseFraming::Chunked)
            && self.unsent.len() == 0;
        if quiet {
            self.end_body();
        }
        quiet
    }

    /// Send the head now and the file's bytes with sendfile(2), up to the
    /// Content-Length when there is one. Only for Length and
    /// close-delimited framing (chunked needs framing around the data).
    pub fn send_file(&mut self, file: std::os::fd::BorrowedFd<'_>, offset: i64, size: u64) -> io::Result<()> {
        self.send(b"")?;
        let stream = self.stream.clone().ok_or_else(finished)?;
        let Writing::Body(enc) = &mut self.writing else { return Ok(()) };
        let count = match enc.framing() {
            ResponseFraming::NoBody => 0,
            _ => enc.remaining().unwrap_or(size).min(size),
        };
        let mut io = DeadlineIo { stream: &stream, timeout: self.timeout };
        let result = io.sendfile(file, offset, count).map(|n| enc.add_sent(n));
        self.note(result)
    }

    /// The framing the head will announce (computed, not yet sent).
    pub fn planned_framing(&self) -> ResponseFraming {
        let (code, length) = self.head.as_ref().map_or((0, None), |h| (h.code, h.content_length));
        ResponseFraming::choose(self.terms.is_head, code, length, self.terms.chunked_allowed)
    }

    /// Head bytes made (0 before the head is).
    pub fn head_bytes(&self) -> u64 {
        self.head_bytes
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.encoder().map_or(0, BodyEncoder::sent)
    }

    /// Whether the connection can carry another request: the head said so
    /// and the body went out whole.
    pub fn connection_reusable(&self) -> bool {
        let whole = match &self.writing {
            Writing::Body(enc) | Writing::Finished(enc) => enc.is_complete(),
            Writing::Head | Writing::Broken(_) => false,
        };
        self.keep_alive && whole
    }

    /// The app broke off after the head went out: the client must see the
    /// body cut short, and the connection is not reused.
    pub fn break_off(&mut self) {
        self.writing = match std::mem::replace(&mut self.writing, Writing::Head) {
            Writing::Body(enc) | Writing::Finished(enc) | Writing::Broken(enc) => Writing::Broken(enc),
            Writing::Head => Writing::Head,
        };
    }

    /// Answer with a small error response of rwsgi's own, which closes the
    /// connection, if the head is not out yet.
    pub fn respond_plain(&mut self, code: u16, reason: &str, body: &str) {
        let headers = vec![
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ("Content-Length".into(), (body.len() + 1).to_string()),
        ];
        let _ = self.set_response(format!("{code} {reason}"), code, headers);
        self.keep_alive = false;
        let text = format!("{body}\n");
        if self.send(text.as_bytes()).and_then(|()| self.finish()).is_err() {
            ::log::debug!("client went away before the error response");
        }
    }

    /// The held response, for the worker to send after its turn (one the
    /// app broke off included: the client sees it cut short, as it would
    /// unheld); empty when it went out already.
    pub fn take_held(&mut self) -> Vec<u8> {
        match &mut self.unsent {
            Unsent::Held(held) => std::mem::take(held),
            Unsent::Spilled(_) => Vec::new(),
        }
    }

    fn encoder(&self) -> Option<&BodyEncoder> {
        match &self.writing {
            Writing::Head => None,
            Writing::Body(enc) | Writing::Finished(enc) | Writing::Broken(enc) => Some(enc),
        }
    }

    fn end_body(&mut self) {
        if let Writing::Body(enc) = std::mem::replace(&mut self.writing, Writing::Head) {
            self.writing = Writing::Finished(enc);
        }
    }

    /// Build the head bytes once; empty after that (and before
    /// `start_response`, when there is no head to build).
    fn take_head(&mut self) -> Vec<u8> {
        let Some(app) = self.head.as_ref().filter(|_| !self.head_sent()) else { return Vec::new() };
        self.expect.forfeit();
        let framing = self.planned_framing();
        // A worker told to stop while the request ran says so in every
        // head it writes from then on: the client must not send another
        // request on this connection, which the worker would not serve.
        self.keep_alive =
            self.keep_alive && !app.wants_close && framing.allows_keep_alive() && !crate::sys::stop_requested();
        let mut head = Vec::with_capacity(256);
        write_head(&mut head, &app.status, &app.headers, framing, self.terms.version, self.keep_alive, &self.date);
        self.head_bytes = head.len() as u64;
        self.writing = Writing::Body(BodyEncoder::new(framing));
        head
    }

    fn note(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.break_off();
        }
        result
    }
}

impl Unsent {
    /// Bytes waiting, held or spilled.
    fn len(&self) -> usize {
        match self {
            Unsent::Spilled(b) | Unsent::Held(b) => b.len(),
        }
    }

    fn is_held(&self) -> bool {
        matches!(self, Unsent::Held(_))
    }

    /// Give up holding: what is held goes out first at the next send.
    fn unhold(&mut self) {
        if let Unsent::Held(bytes) = self {
            *self = Unsent::Spilled(std::mem::take(bytes));
        }
    }

    fn push(&mut self, data: &[u8]) {
        match self {
            Unsent::Spilled(b) | Unsent::Held(b) => b.extend_from_slice(data),
        }
    }

    /// Send the spilled bytes, waiting as `io` allows.
    fn flush(&mut self, io: &mut DeadlineIo<'_>) -> io::Result<()> {
        if let Unsent::Spilled(bytes) = self {
            if !bytes.is_empty() {
                io.write_all(bytes)?;
                bytes.clear();
            }
        }
        Ok(())
    }
}

/// RFC 9110 §8.6: 1*DIGIT; two different lengths would let a proxy and
/// its client disagree on where the body ends.
fn parse_app_content_length(value: &str) -> Result<u64, String> {
    let digits = value.trim_matches([' ', '\t']);
    Some(digits)
        .filter(|d| !d.is_empty() && d.len() <= 19 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| format!("invalid Content-Length {value:?}"))
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

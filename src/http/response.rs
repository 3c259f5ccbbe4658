//! Response framing (RFC 9112 §6.3 from the sender's side) and the bytes
//! of a response head.

use super::{HttpError, Version};

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// HEAD, 1xx, 204, 304: headers only, whatever the app yields.
    NoBody,
    /// The app's Content-Length; at most that many bytes are sent.
    Length(u64),
    /// No known length, where chunked is allowed (HTTP/1.1).
    Chunked,
    /// No known length otherwise (HTTP/1.0, a uwsgi front end): the end of
    /// the body is the close.
    CloseDelimited,
}

impl ResponseFraming {
    /// Choose the framing for a response; `chunked_allowed` when the
    /// reader understands chunked bodies.
    pub fn choose(is_head: bool, status: u16, content_length: Option<u64>, chunked_allowed: bool) -> Self {
        if is_head || (100..200).contains(&status) || status == 204 || status == 304 {
            ResponseFraming::NoBody
        } else if let Some(n) = content_length {
            ResponseFraming::Length(n)
        } else if chunked_allowed {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::CloseDelimited
        }
    }

    /// Whether the connection can carry another request after this response.
    pub fn allows_keep_alive(self) -> bool {
        self != ResponseFraming::CloseDelimited
    }
}

/// Append a response head to `out`. `status` and `headers` come from the
/// app, already validated to be latin-1 without control characters, and
/// go out latin-1 encoded (PEP 3333 native strings). rwsgi adds `Server`
/// and `Date` unless the app set them, the framing header, and
/// `Connection` as needed.
pub fn write_head(
    out: &mut Vec<u8>,
    status: &str,
    headers: &[(String, String)],
    framing: ResponseFraming,
    version: Version,
    keep_alive: bool,
    date: &str,
) {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_latin1(out, status);
    out.extend_from_slice(b"\r\n");
    if !has("server") {
        out.extend_from_slice(b"Server: rwsgi\r\n");
    }
    if !has("date") {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_latin1(out, value);
        out.extend_from_slice(b"\r\n");
    }
    if framing == ResponseFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    match (keep_alive, version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Append text as latin-1; characters past U+00FF (refused earlier by
/// validation) become `?` rather than UTF-8 bytes.
fn push_latin1(out: &mut Vec<u8>, text: &str) {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
    } else {
        out.extend(text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')));
    }
}

/// A complete response for a request rwsgi refuses; always closes.
pub fn error_response(err: HttpError, date: &str) -> Vec<u8> {
    let (code, reason) = err.status();
    simple_response(code, reason, err.describe(), date)
}

/// A small text/plain response that closes the connection.
pub fn simple_response(code: u16, reason: &str, body: &str, date: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nServer: rwsgi\r\nDate: {date}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}\n",
        body.len() + 1
    )
    .into_bytes()
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that PEP 3333 forbids an
/// application to set; the server owns the connection.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_table() {
        use ResponseFraming::*;
        let (v11, v10) = (true, false);
        assert_eq!(ResponseFraming::choose(true, 200, Some(5), v11), NoBody);
        assert_eq!(ResponseFraming::choose(false, 204, None, v11), NoBody);
        assert_eq!(ResponseFraming::choose(false, 304, Some(9), v11), NoBody);
        assert_eq!(ResponseFraming::choose(false, 101, None, v11), NoBody);
        assert_eq!(ResponseFraming::choose(false, 200, Some(5), v10), Length(5));
        assert_eq!(ResponseFraming::choose(false, 200, None, v11), Chunked);
        assert_eq!(ResponseFraming::choose(false, 200, None, v10), CloseDelimited);
        assert!(!CloseDelimited.allows_keep_alive());
    }

    #[test]
    fn head_bytes() {
        let mut out = Vec::new();
        let headers = vec![("Content-Type".to_string(), "text/plain".to_string())];
        write_head(&mut out, "200 OK", &headers, ResponseFraming::Chunked, Version::Http11, false, "D");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: rwsgi\r\nDate: D\r\nContent-Type: text/plain\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        write_head(&mut out, "200 OK", &[], ResponseFraming::Length(0), Version::Http10, true, "D");
        assert!(String::from_utf8(out).unwrap().ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn error_responses_close_and_carry_length() {
        let r = String::from_utf8(error_response(HttpError::TooManyHeaders, "D")).unwrap();
        assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}

/// Writes a response body in its framing. The head goes out with the
/// first write, in the same `writev`.
#[derive(Debug)]
pub struct BodyEncoder {
    framing: ResponseFraming,
    /// Body bytes sent so far (excluding framing).
    sent: u64,
}

impl BodyEncoder {
    /// An encoder for a body framed by `framing`, nothing sent yet.
    pub fn new(framing: ResponseFraming) -> Self {
        BodyEncoder { framing, sent: 0 }
    }

    /// The framing the head announced.
    pub fn framing(&self) -> ResponseFraming {
        self.framing
    }

    /// Body bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Body bytes still owed under a Content-Length; `None` otherwise.
    pub fn remaining(&self) -> Option<u64> {
        match self.framing {
            ResponseFraming::Length(n) => Some(n.saturating_sub(self.sent)),
            _ => None,
        }
    }

    /// Whether `len` more body bytes complete the body: no body is due,
    /// or they cover the rest of a Content-Length.
    pub fn completed_by(&self, len: usize) -> bool {
        match self.framing {
            ResponseFraming::NoBody => true,
            ResponseFraming::Length(_) => self.remaining().is_some_and(|n| n <= len as u64),
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => false,
        }
    }

    /// Write `head` (if any) and `data` framed. Data past a Content-Length
    /// is dropped, and so is any body of a bodiless response.
    pub fn write(&mut self, w: &mut impl std::io::Write, head: &[u8], data: &[u8]) -> std::io::Result<()> {
        use std::io::IoSlice;
        let data = match self.framing {
            ResponseFraming::NoBody => &data[..0],
            ResponseFraming::Length(_) => {
                let left = usize::try_from(self.remaining().unwrap_or(0)).unwrap_or(usize::MAX);
                &data[..data.len().min(left)]
            }
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => data,
        };
        self.sent += data.len() as u64;
        if self.framing == ResponseFraming::Chunked && !data.is_empty() {
            let size = super::chunked::chunk_header(data.len());
            let mut bufs = [IoSlice::new(head), IoSlice::new(size.as_bytes()), IoSlice::new(data), IoSlice::new(b"\r\n")];
            crate::net::write_all_vectored(w, &mut bufs)
        } else {
            let mut bufs = [IoSlice::new(head), IoSlice::new(data)];
            crate::net::write_all_vectored(w, &mut bufs)
        }
    }

    /// Write `head` (if any) and end the body.
    pub fn finish(&mut self, w: &mut impl std::io::Write, head: &[u8]) -> std::io::Result<()> {
        let tail: &[u8] = if self.framing == ResponseFraming::Chunked { super::chunked::LAST_CHUNK } else { b"" };
        let mut bufs = [std::io::IoSlice::new(head), std::io::IoSlice::new(tail)];
        crate::net::write_all_vectored(w, &mut bufs)
    }

    /// Account for bytes sent around the encoder (sendfile).
    pub fn add_sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// True when the body on the wire is whole: every promised byte sent.
    pub fn is_complete(&self) -> bool {
        self.remaining().is_none_or(|n| n == 0)
    }
}

#[cfg(test)]
mod encoder_tests {
    use super::*;

    #[test]
    fn chunked_and_length_bodies() {
        let mut out = Vec::new();
        let mut e = BodyEncoder::new(ResponseFraming::Chunked);
        assert!(!e.completed_by(5));
        e.write(&mut out, b"H", b"hello").unwrap();
        e.write(&mut out, b"", b"").unwrap();
        e.finish(&mut out, b"").unwrap();
        assert_eq!(out, b"H5\r\nhello\r\n0\r\n\r\n");

        let mut out = Vec::new();
        let mut e = BodyEncoder::new(ResponseFraming::Length(3));
        assert!(!e.completed_by(2) && e.completed_by(3));
        e.write(&mut out, b"", b"ab").unwrap();
        assert!(!e.is_complete() && e.completed_by(1));
        e.write(&mut out, b"", b"cdef").unwrap();
        e.finish(&mut out, b"").unwrap();
        assert_eq!((out.as_slice(), e.is_complete()), (&b"abc"[..], true));

        let mut out = Vec::new();
        let mut e = BodyEncoder::new(ResponseFraming::NoBody);
        assert!(e.completed_by(0));
        e.write(&mut out, b"H", b"ignored").unwrap();
        assert_eq!(out, b"H");
    }
}

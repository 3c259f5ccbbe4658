//! The request body as a stream: framing (Content-Length or chunked) over
//! any `Read`, with the bytes already buffered after the head used first.
//!
//! Never reads past the end of the body: what follows (a pipelined
//! request) is handed back by [`BodyReader::into_leftover`]. Holds little
//! whatever the body's size: the bytes the app has taken are let go
//! before more are read, so the buffers hold at most one socket read and
//! what the app asked for (a `read()` without a size, or a line, is
//! whatever length the app asked for).

use std::io::{self, Read};

use super::{BodyFraming, ChunkedDecoder, HttpError};

/// How much is read from the socket at a time.
const READ_SIZE: usize = 64 * 1024;

/// Why the body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The client broke the framing or was too slow.
    Http(HttpError),
    /// The connection failed.
    Io(io::ErrorKind),
}

impl From<HttpError> for BodyError {
    fn from(e: HttpError) -> Self {
        BodyError::Http(e)
    }
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

/// Incremental reader of one request body.
#[derive(Debug)]
pub struct BodyReader {
    state: BodyState,
    /// Bytes from the connection not yet decoded (`raw[raw_pos..]`).
    raw: Vec<u8>,
    raw_pos: usize,
    /// Decoded body bytes not yet handed out (`pending[pending_pos..]`).
    pending: Vec<u8>,
    pending_pos: usize,
    /// The first error; every later read fails the same way.
    error: Option<BodyError>,
    /// Decoded body bytes so far, for `limit`.
    decoded: u64,
    /// The most body bytes allowed (`--limit-request-body`); a chunked
    /// body that runs past it fails with `ContentTooLarge`.
    limit: Option<u64>,
}

impl BodyReader {
    /// A reader for a body framed by `framing`, starting with `leftover`:
    /// the bytes that followed the head in the connection buffer.
    pub fn new(framing: BodyFraming, leftover: Vec<u8>) -> Self {
        let state = match framing {
            BodyFraming::Empty => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
        };
        BodyReader { state, raw: leftover, raw_pos: 0, pending: Vec::new(), pending_pos: 0, error: None, decoded: 0, limit: None }
    }

    /// The same, refusing more than `limit` body bytes (when set).
    pub fn limited_to(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    /// The same, for a buffer whose first `pos` bytes are already used
    /// (the head): the body bytes are not moved.
    pub fn starting_at(mut self, pos: usize) -> Self {
        self.raw_pos = pos.min(self.raw.len());
        self
    }

    /// True when the whole body has been decoded (it may still sit in
    /// `pending`, unread by the app).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// True when the body will need bytes from the connection: the app's
    /// first read of such a body is when `100 Continue` is due.
    pub fn needs_input(&self) -> bool {
        !self.is_complete() && self.raw_pos == self.raw.len()
    }

    /// Body bytes decoded so far (read by the app, or drained).
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Bytes of memory the reader's buffers hold (their capacity).
    pub fn buffered(&self) -> usize {
        self.raw.capacity() + self.pending.capacity()
    }

    /// The first error met, if any.
    pub fn error(&self) -> Option<BodyError> {
        self.error
    }

    /// Up to `limit` body bytes (all remaining when `None`); empty at the end.
    pub fn read(&mut self, src: &mut dyn Read, limit: Option<usize>) -> Result<Vec<u8>, BodyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let want = limit.unwrap_or(usize::MAX);
        // Like a buffered file (and Gunicorn): read(n) returns n bytes
        // unless the body ends first.
        while self.available() < want && !self.is_complete() {
            self.fill(src)?;
        }
        Ok(self.take(want))
    }

    /// Up to and including the next `\n`, at most `limit` bytes.
    pub fn read_line(&mut self, src: &mut dyn Read, limit: Option<usize>) -> Result<Vec<u8>, BodyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let want = limit.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let avail = &self.pending[self.pending_pos..];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                return Ok(self.take((scanned + i + 1).min(want)));
            }
            scanned = avail.len();
            if scanned >= want || self.is_complete() {
                return Ok(self.take(want));
            }
            self.fill(src)?;
        }
    }

    /// Read and discard the rest of the body, at most `max` bytes from the
    /// connection. Ok(true) when the body ended within that.
    pub fn drain(&mut self, src: &mut dyn Read, max: usize) -> Result<bool, BodyError> {
        let mut budget = max;
        self.pending.clear();
        self.pending_pos = 0;
        while !self.is_complete() {
            if self.raw_pos == self.raw.len() {
                if budget == 0 {
                    return Ok(false);
                }
                let n = self.read_raw(src)?;
                budget = budget.saturating_sub(n);
            }
            self.decode()?;
            self.pending.clear();
            self.pending_pos = 0;
        }
        Ok(true)
    }

    /// The connection bytes after the body (a pipelined request).
    pub fn into_leftover(mut self) -> Vec<u8> {
        self.raw.drain(..self.raw_pos);
        self.raw
    }

    fn available(&self) -> usize {
        self.pending.len() - self.pending_pos
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.available());
        let out = self.pending[self.pending_pos..self.pending_pos + n].to_vec();
        self.pending_pos += n;
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        out
    }

    /// Decode buffered bytes, reading from `src` first if none are buffered.
    fn fill(&mut self, src: &mut dyn Read) -> Result<(), BodyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.raw_pos == self.raw.len() {
            self.read_raw(src)?;
        }
        self.decode()
    }

    fn read_raw(&mut self, src: &mut dyn Read) -> Result<usize, BodyError> {
        // Let go of what is decoded: the buffer holds the bytes not yet
        // decoded and this read, nothing older.
        self.raw.drain(..self.raw_pos);
        self.raw_pos = 0;
        let start = self.raw.len();
        self.raw.resize(start + READ_SIZE, 0);
        let result = src.read(&mut self.raw[start..]);
        let n = *result.as_ref().unwrap_or(&0);
        self.raw.truncate(start + n);
        let err = match result {
            Ok(0) => BodyError::Http(HttpError::TruncatedBody),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => BodyError::Http(HttpError::Timeout),
            Err(e) => BodyError::Io(e.kind()),
        };
        self.error = Some(err);
        Err(err)
    }

    fn decode(&mut self) -> Result<(), BodyError> {
        // Let go of the decoded bytes the app has taken: however its reads
        // and the socket's line up, `pending` holds no more than what the
        // app left plus what this decode adds.
        if self.pending_pos > 0 {
            self.pending.drain(..self.pending_pos);
            self.pending_pos = 0;
        }
        let before = self.pending.len();
        self.decode_more()?;
        self.decoded += (self.pending.len() - before) as u64;
        if self.limit.is_some_and(|limit| self.decoded > limit) {
            let err = BodyError::Http(HttpError::ContentTooLarge);
            self.error = Some(err);
            return Err(err);
        }
        Ok(())
    }

    /// Decode what `raw` holds past `raw_pos` into `pending`.
    fn decode_more(&mut self) -> Result<(), BodyError> {
        let input = &self.raw[self.raw_pos..];
        match &mut self.state {
            BodyState::Done => {}
            BodyState::Length(remaining) => {
                let n = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                self.pending.extend_from_slice(&input[..n]);
                self.raw_pos += n;
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = BodyState::Done;
                }
            }
            BodyState::Chunked(decoder) => match decoder.decode(input, &mut self.pending, usize::MAX) {
                Ok(n) => {
                    self.raw_pos += n;
                    if decoder.is_done() {
                        self.state = BodyState::Done;
                    }
                }
                Err(e) => {
                    self.error = Some(BodyError::Http(e));
                    return Err(BodyError::Http(e));
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields its bytes `step` at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(framing: BodyFraming, wire: &[u8], split: usize, step: usize) -> (Vec<u8>, Vec<u8>) {
        let mut r = BodyReader::new(framing, wire[..split].to_vec());
        let mut src = Trickle { data: &wire[split..], step };
        let mut body = Vec::new();
        loop {
            let part = r.read(&mut src, Some(3)).unwrap();
            if part.is_empty() {
                break;
            }
            body.extend(part);
        }
        let mut rest = r.into_leftover();
        rest.extend_from_slice(src.data);
        (body, rest)
    }

    #[test]
    fn length_and_chunked_stop_at_the_body_end_whatever_the_split() {
        let cases: [(BodyFraming, &[u8]); 2] = [
            (BodyFraming::Length(11), b"hello worldGET / HTTP/1.1\r\n"),
            (BodyFraming::Chunked, b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\n"),
        ];
        for (framing, wire) in cases {
            for split in 0..=wire.len() {
                for step in [1, 2, 7, 4096] {
                    let (body, rest) = read_all(framing, wire, split, step);
                    assert_eq!(body, b"hello world", "{framing:?} split {split} step {step}");
                    assert_eq!(rest, b"GET / HTTP/1.1\r\n", "{framing:?} split {split} step {step}");
                }
            }
        }
    }

    #[test]
    fn read_line_and_limits() {
        let mut r = BodyReader::new(BodyFraming::Length(12), b"ab\ncd\nefghij".to_vec());
        let mut src = io::empty();
        assert_eq!(r.read_line(&mut src, None).unwrap(), b"ab\n");
        assert_eq!(r.read_line(&mut src, Some(1)).unwrap(), b"c");
        assert_eq!(r.read_line(&mut src, None).unwrap(), b"d\n");
        assert_eq!(r.read_line(&mut src, Some(4)).unwrap(), b"efgh");
        assert_eq!(r.read(&mut src, None).unwrap(), b"ij");
        assert_eq!(r.read_line(&mut src, None).unwrap(), b"");
    }

    #[test]
    fn truncated_and_bad_bodies_fail_and_stay_failed() {
        let mut r = BodyReader::new(BodyFraming::Length(10), b"short".to_vec());
        let mut src = io::empty();
        assert_eq!(r.read(&mut src, None), Err(BodyError::Http(HttpError::TruncatedBody)));
        assert_eq!(r.read(&mut src, Some(1)), Err(BodyError::Http(HttpError::TruncatedBody)));
        let mut r = BodyReader::new(BodyFraming::Chunked, b"zz\r\n".to_vec());
        assert_eq!(r.read(&mut src, None), Err(BodyError::Http(HttpError::InvalidChunk)));
    }

    /// A source whose reads return sizes that never line up with the
    /// app's: 65536, 50000, 1, 65535, ...
    struct Ragged {
        left: usize,
        turn: usize,
    }

    impl Read for Ragged {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            const SIZES: [usize; 5] = [65536, 50000, 1, 65535, 4097];
            self.turn += 1;
            let n = SIZES[self.turn % SIZES.len()].min(buf.len()).min(self.left);
            buf[..n].fill(b'z');
            self.left -= n;
            Ok(n)
        }
    }

    /// Regression: the decoded bytes the app had taken were let go only
    /// when a read happened to line up with the socket's, so a large
    /// upload read in small pieces stayed in memory whole.
    #[test]
    fn memory_stays_bounded_however_reads_line_up() {
        const BODY: usize = 32 << 20;
        for step in [8192, 1000, 65536, 100_000] {
            let mut r = BodyReader::new(BodyFraming::Length(BODY as u64), Vec::new());
            let mut src = Ragged { left: BODY, turn: 0 };
            let (mut total, mut most) = (0, 0);
            loop {
                let n = r.read(&mut src, Some(step)).unwrap().len();
                if n == 0 {
                    break;
                }
                total += n;
                most = most.max(r.buffered());
            }
            assert_eq!(total, BODY);
            assert!(most <= 4 * READ_SIZE + 2 * step, "step {step}: {most} bytes held");
        }
    }

    #[test]
    fn chunked_memory_stays_bounded_too() {
        let mut wire = Vec::new();
        for i in 0..2000 {
            let chunk = vec![b'c'; 1000 + i % 7000];
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut r = BodyReader::new(BodyFraming::Chunked, Vec::new());
        let mut src = Trickle { data: &wire, step: 50_001 };
        let mut most = 0;
        while !r.read(&mut src, Some(8192)).unwrap().is_empty() {
            most = most.max(r.buffered());
        }
        assert!(most <= 4 * READ_SIZE + 2 * 8192, "{most} bytes held");
    }

    #[test]
    fn a_chunked_body_past_the_limit_fails() {
        let wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let read = |limit| BodyReader::new(BodyFraming::Chunked, wire.to_vec()).limited_to(Some(limit)).read(&mut io::empty(), None);
        assert_eq!(read(11), Ok(b"hello world".to_vec()));
        assert_eq!(read(10), Err(BodyError::Http(HttpError::ContentTooLarge)));
    }

    #[test]
    fn drain_is_bounded() {
        let wire = vec![b'x'; 300_000];
        let mut r = BodyReader::new(BodyFraming::Length(300_000), Vec::new());
        assert_eq!(r.drain(&mut &wire[..], 100_000), Ok(false));
        let mut r = BodyReader::new(BodyFraming::Length(300_000), Vec::new());
        assert_eq!(r.drain(&mut &wire[..], 1_000_000), Ok(true));
    }
}

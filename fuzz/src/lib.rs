//! Helpers shared by the rwsgi fuzz targets: limits chosen by the input,
//! a request-head serializer, a chunked feeding loop and a lenient
//! reference chunked reader. Only pure rwsgi APIs are used (no Python).

use std::io::{self, Read};

use rwsgi::config::RequestLimits;
use rwsgi::http::{ChunkedDecoder, HttpError, Request};

/// The defaults (`--limit-request-line 4094`, 100 fields of 8190 bytes).
pub const DEFAULT: RequestLimits =
    RequestLimits { request_line: 4094, fields: 100, field_size: 8190, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false };
/// Small limits, so that every limit is reachable by short inputs.
pub const SMALL: RequestLimits =
    RequestLimits { request_line: 32, fields: 4, field_size: 24, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false };
/// 0 = unlimited request line and field size.
pub const UNLIMITED: RequestLimits =
    RequestLimits { request_line: 0, fields: 100, field_size: 0, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false };

/// Limits from a 4-byte config block: `cfg` bits 0-1 pick default, small,
/// unlimited or custom (`rl`, `nf`, `fs`); bit 2 permits obs-fold, bit 3
/// unconventional methods.
/// Custom limits stay within what the config accepts (fields >= 1).
pub fn limits_from(cfg: u8, rl: u8, nf: u8, fs: u8) -> RequestLimits {
    let base = match cfg & 3 {
        0 => DEFAULT,
        1 => SMALL,
        2 => UNLIMITED,
        _ => RequestLimits {
            request_line: usize::from(rl),
            fields: usize::from(nf % 16) + 1,
            field_size: usize::from(fs),
            permit_obsolete_folding: false,
            permit_unconventional_method: false,
            casefold_method: false,
        },
    };
    RequestLimits { permit_obsolete_folding: cfg & 4 != 0, permit_unconventional_method: cfg & 8 != 0, ..base }
}

/// The head of `req` as rwsgi would need to receive it: request line,
/// `name:value` lines (no OWS added, so no line grows past a field-size
/// limit the original met) and the empty line. Headers are written as
/// parsed: obs-fold already replaced by SP, values already trimmed.
pub fn serialize_head(req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &req.headers {
        out.extend_from_slice(h.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `req` with `head_len` cleared, to compare requests read from different
/// bytes.
pub fn without_head_len(req: &Request) -> Request {
    Request { head_len: 0, ..req.clone() }
}

/// What feeding a chunked body produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes consumed in total, or the error.
    pub result: Result<usize, HttpError>,
    /// Decoded data (also on error: what came before it).
    pub out: Vec<u8>,
    pub done: bool,
}

/// Feed `input` to a fresh decoder in pieces ending at `cuts` (ascending
/// offsets; the end of input is implied), at most `max_out` bytes of
/// output per call. Checks the per-call contract on the way: a call
/// consumes at most its input, produces at most `max_out`, and only stops
/// short of its input when done or out of output room.
pub fn feed(input: &[u8], cuts: &[usize], max_out: usize) -> Fed {
    assert!(max_out > 0);
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    ends.push(input.len());
    for end in ends {
        while pos < end && !dec.is_done() {
            let before = out.len();
            match dec.decode(&input[pos..end], &mut out, max_out) {
                Ok(n) => {
                    assert!(n <= end - pos, "consumed {n} of {} bytes", end - pos);
                    let produced = out.len() - before;
                    assert!(produced <= max_out, "produced {produced} > max_out {max_out}");
                    if n < end - pos {
                        assert!(
                            dec.is_done() || produced == max_out,
                            "stopped at {n} of {} without being done or full",
                            end - pos
                        );
                    }
                    assert!(n > 0 || dec.is_done(), "no progress");
                    pos += n;
                }
                Err(e) => return Fed { result: Err(e), out, done: false },
            }
        }
        if dec.is_done() {
            break;
        }
    }
    Fed { result: Ok(pos), out, done: dec.is_done() }
}

/// A lenient chunked reader written from RFC 9112 §7.1, independent of
/// rwsgi's: size = hex digits, the rest of the size line (BWS,
/// extensions) up to CRLF is skipped, data, CRLF; after the last chunk,
/// trailer lines up to an empty line. Returns the data and the offset just
/// past the final CRLF, or `None` when it cannot read a whole body. Anything
/// rwsgi accepts must read the same way here (same data, same end).
pub fn reference_chunked(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut pos = 0;
    let mut data = Vec::new();
    let find_crlf = |from: usize| input.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|i| from + i);
    loop {
        let digits = input[pos..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 {
            return None;
        }
        let size = u128::from_str_radix(std::str::from_utf8(&input[pos..pos + digits]).ok()?, 16).ok()?;
        let line_end = find_crlf(pos + digits)?;
        pos = line_end + 2;
        if size == 0 {
            loop {
                let end = find_crlf(pos)?;
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Some((data, pos));
                }
            }
        }
        let size = usize::try_from(size).ok()?;
        let chunk = input.get(pos..pos.checked_add(size)?)?;
        data.extend_from_slice(chunk);
        pos += size;
        if input.get(pos..pos + 2)? != b"\r\n" {
            return None;
        }
        pos += 2;
    }
}

/// Encode `data` as a chunked body, in chunks whose sizes come from
/// `sizes` (cycled; 0 means "the rest"), with the last chunk.
pub fn encode_chunked(data: &[u8], sizes: &[u8]) -> Vec<u8> {
    use rwsgi::http::chunked::{chunk_header, LAST_CHUNK};
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let want = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0);
        let n = if want == 0 { rest.len() } else { usize::from(want).min(rest.len()) };
        out.extend_from_slice(chunk_header(n).as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(LAST_CHUNK);
    out
}

/// A `Read` that hands out its bytes `step` at a time, then EOF.
pub struct Trickle<'a> {
    pub data: &'a [u8],
    pub step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A fuzzer-chosen point in `0..=len` from one byte (0 → 0, 255 → len).
pub fn pick(len: usize, byte: u8) -> usize {
    len * usize::from(byte) / 255
}


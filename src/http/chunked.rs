//! The chunked transfer coding (RFC 9112 §7.1): a decoder that is a state
//! machine over bytes, one small step per state, and the encoder's framing.
//!
//! The decoder consumes input in any split (byte by byte included) and
//! never reads past the final CRLF, so bytes after the body stay for the
//! next pipelined request.

use super::HttpError;

/// Most hex digits in a chunk size: 15 keeps the size under 2^60, far from
/// overflow and far beyond any real body.
const MAX_SIZE_DIGITS: u32 = 15;
/// Most bytes of chunk extensions per chunk line.
const MAX_EXTENSION_LEN: usize = 4096;
/// Most bytes of trailer section.
const MAX_TRAILER_LEN: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkedState {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the size: optional BWS, then `;ext` or CR.
    AfterSize,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Chunk data; `remaining` bytes left.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer field line, up to CR.
    Trailer,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting the LF of the final CRLF.
    EndLf,
    Done,
}

/// Incremental chunked-body decoder.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: ChunkedState,
    size: u64,
    digits: u32,
    remaining: u64,
    extension_len: usize,
    trailer_len: usize,
    /// The trailer field line being read (allocated only for trailers).
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkedState::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            extension_len: 0,
            trailer_len: 0,
            line: Vec::new(),
        }
    }

    /// True once the last chunk and trailers are consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkedState::Done
    }

    /// Decode from `input`, appending at most `max_out` data bytes to
    /// `out`. Returns how many input bytes were consumed. Stops early when
    /// `max_out` is reached or the body is done.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<usize, HttpError> {
        let mut pos = 0;
        let mut produced = 0;
        while pos < input.len() && self.state != ChunkedState::Done {
            if self.state == ChunkedState::Data {
                if produced == max_out {
                    break;
                }
                let take = (input.len() - pos).min(max_out - produced);
                let take = take.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[pos..pos + take]);
                pos += take;
                produced += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = ChunkedState::DataCr;
                }
                continue;
            }
            self.state = self.step(input[pos])?;
            pos += 1;
        }
        Ok(pos)
    }

    /// One byte of framing (any state but `Data`).
    fn step(&mut self, b: u8) -> Result<ChunkedState, HttpError> {
        use ChunkedState::*;
        Ok(match self.state {
            Size => match hex_value(b) {
                Some(v) => {
                    self.digits += 1;
                    if self.digits > MAX_SIZE_DIGITS {
                        return Err(HttpError::ChunkTooLarge);
                    }
                    self.size = self.size * 16 + u64::from(v);
                    Size
                }
                None if self.digits == 0 => return Err(HttpError::InvalidChunk),
                None => return self.after_size(b),
            },
            AfterSize => self.after_size(b)?,
            Extension => match b {
                b'\r' => SizeLf,
                // Extensions are quoted-string or token: no CTLs but HTAB.
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    self.extension_len += 1;
                    if self.extension_len > MAX_EXTENSION_LEN {
                        return Err(HttpError::InvalidChunk);
                    }
                    Extension
                }
                _ => return Err(HttpError::InvalidChunk),
            },
            SizeLf => match b {
                b'\n' => self.start_chunk(),
                _ => return Err(HttpError::InvalidChunk),
            },
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(HttpError::InvalidChunk),
            },
            DataLf => match b {
                b'\n' => {
                    self.size = 0;
                    self.digits = 0;
                    self.extension_len = 0;
                    Size
                }
                _ => return Err(HttpError::InvalidChunk),
            },
            TrailerStart => match b {
                b'\r' => EndLf,
                // A trailer line must start with a field name, never
                // whitespace (no obs-fold).
                _ if super::is_token(&[b]) => self.trailer_byte(b)?,
                _ => return Err(HttpError::InvalidChunk),
            },
            Trailer => match b {
                b'\r' => TrailerLf,
                b'\n' => return Err(HttpError::InvalidChunk),
                _ => self.trailer_byte(b)?,
            },
            TrailerLf => match b {
                b'\n' => {
                    check_trailer_field(&self.line)?;
                    self.line.clear();
                    TrailerStart
                }
                _ => return Err(HttpError::InvalidChunk),
            },
            EndLf => match b {
                b'\n' => Done,
                _ => return Err(HttpError::InvalidChunk),
            },
            Data | Done => unreachable!("decode() handles Data and stops at Done"),
        })
    }

    /// After the size digits: BWS then `;` starts extensions, CR ends the line.
    fn after_size(&mut self, b: u8) -> Result<ChunkedState, HttpError> {
        match b {
            b' ' | b'\t' => Ok(ChunkedState::AfterSize),
            b';' => Ok(ChunkedState::Extension),
            b'\r' => Ok(ChunkedState::SizeLf),
            _ => Err(HttpError::InvalidChunk),
        }
    }

    fn start_chunk(&mut self) -> ChunkedState {
        if self.size == 0 {
            ChunkedState::TrailerStart
        } else {
            self.remaining = self.size;
            ChunkedState::Data
        }
    }

    fn trailer_byte(&mut self, b: u8) -> Result<ChunkedState, HttpError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_LEN {
            return Err(HttpError::HeaderTooLarge);
        }
        self.line.push(b);
        Ok(ChunkedState::Trailer)
    }
}

/// RFC 9112 §7.1.2: a trailer field line follows the header field rules
/// (token name, no whitespace before the colon, a value without CTLs).
/// Of the fields RFC 9110 §6.5.1 keeps out of trailers, those that would
/// frame, route or authenticate the request if a late copy were believed
/// are refused, as Gunicorn refuses them; other trailers are read and
/// dropped (they never reach the environ).
fn check_trailer_field(line: &[u8]) -> Result<(), HttpError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(HttpError::InvalidTrailer)?;
    let (name, value) = (&line[..colon], super::trim_ows(&line[colon + 1..]));
    if !super::is_token(name) || !super::is_field_value(value) {
        return Err(HttpError::InvalidTrailer);
    }
    if FORBIDDEN_TRAILERS.iter().any(|f| name.eq_ignore_ascii_case(f.as_bytes())) {
        return Err(HttpError::ForbiddenTrailer);
    }
    Ok(())
}

/// Trailer fields refused with 400: they frame (Content-Length,
/// Transfer-Encoding, Trailer, TE), route (Host) or authenticate
/// (Authorization) a request.
const FORBIDDEN_TRAILERS: &[&str] = &["authorization", "content-length", "host", "te", "trailer", "transfer-encoding"];

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The line that starts a chunk of `len` bytes: `{len:x}\r\n`.
pub fn chunk_header(len: usize) -> String {
    format!("{len:x}\r\n")
}

/// The last chunk and the end of an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

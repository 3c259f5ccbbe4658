//! `rwsgi::http::ChunkedDecoder` and `rwsgi::http::body::BodyReader` on
//! arbitrary bytes.
//!
//! Input: 4 config bytes, then the body.
//! - byte 0: where to split the body (fraction of its length)
//! - byte 1: `max_out` for the limited-output feed (byte + 1)
//! - byte 2: read size of the `BodyReader` source
//! - byte 3: chunk size for re-encoding (0 = one chunk), and the
//!   Content-Length for the `BodyReader` length check
//!
//! Properties:
//! - the same result (consumed count or error), the same output and the
//!   same done-ness whether the body is fed whole, split at the chosen
//!   offset, byte by byte (bodies up to 256 bytes), or with a small
//!   `max_out`; each call consumes at most its input and stops short only
//!   when done or out of output room;
//! - Ok but not done: the whole input was consumed;
//! - done: consumed <= len, the consumed bytes end in CRLF, appending junk
//!   leaves the consumed count unchanged, one byte less is not done, and a
//!   lenient reference reader ends the body at the same byte with the same
//!   data (no disagreement a smuggler could use);
//! - the decoded data, chunked again with `chunk_header` + `LAST_CHUNK`,
//!   decodes to the same data, done, consuming all of it;
//! - `BodyReader` (chunked) over the same bytes, split between the
//!   leftover buffer and a trickling source, yields the same body and hands
//!   back exactly the bytes after it (`into_leftover`), or fails with the
//!   decoder's error (`TruncatedBody` when the input ends early);
//! - `BodyReader` (Content-Length) stops at the length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::http::body::{BodyError, BodyReader};
use rwsgi::http::{BodyFraming, HttpError};
use rwsgi_fuzz::{encode_chunked, feed, pick, reference_chunked, Trickle};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (split, max_out, step, size) = (data[0], usize::from(data[1]) + 1, data[2], data[3]);
    let body = &data[4..];

    let whole = feed(body, &[], usize::MAX);
    let at = pick(body.len(), split);
    assert_eq!(feed(body, &[at], usize::MAX), whole, "split at {at}");
    if body.len() <= 256 {
        let cuts: Vec<usize> = (1..body.len()).collect();
        assert_eq!(feed(body, &cuts, usize::MAX), whole, "byte by byte");
    }
    assert_eq!(feed(body, &[at], max_out), whole, "max_out {max_out}");

    match whole.result {
        Ok(consumed) if whole.done => {
            assert!(consumed <= body.len());
            assert!(consumed >= 5 && &body[consumed - 2..consumed] == b"\r\n", "done without a final CRLF");
            for junk in [&b"GET / HTTP/1.1\r\n"[..], b"0\r\n\r\n", b"\r\n", b"x"] {
                let mut more = body[..consumed].to_vec();
                more.extend_from_slice(junk);
                let again = feed(&more, &[], usize::MAX);
                assert_eq!(again.result, Ok(consumed), "junk {junk:?} after the body was consumed");
                assert!(again.done);
            }
            let short = feed(&body[..consumed - 1], &[], usize::MAX);
            assert!(!short.done && short.result.is_ok(), "one byte short: {short:?}");
            assert_eq!(
                reference_chunked(body),
                Some((whole.out.clone(), consumed)),
                "a lenient reader sees another body"
            );
        }
        Ok(consumed) => assert_eq!(consumed, body.len(), "not done but input left over"),
        Err(_) => {}
    }

    // Re-encode what was decoded.
    let encoded = encode_chunked(&whole.out, &[size]);
    let re = feed(&encoded, &[pick(encoded.len(), split)], usize::MAX);
    assert_eq!(re.result, Ok(encoded.len()), "re-encoded body");
    assert!(re.done);
    assert_eq!(re.out, whole.out);
    assert_eq!(reference_chunked(&encoded), Some((whole.out.clone(), encoded.len())));

    // The same bytes through BodyReader. Each source read costs a 64 KiB
    // buffer, so keep the number of reads small.
    let read_size = (usize::from(step) + 1).max(body.len() / 8);
    let (got, leftover) = read_body(BodyFraming::Chunked, body, at, read_size, max_out);
    match (&whole.result, whole.done) {
        (Ok(consumed), true) => {
            assert_eq!(got, Ok(whole.out.clone()), "BodyReader body");
            assert_eq!(leftover, body[*consumed..], "BodyReader leftover");
        }
        (Ok(_), false) => assert_eq!(got, Err(BodyError::Http(HttpError::TruncatedBody))),
        (Err(e), _) => assert_eq!(got, Err(BodyError::Http(*e))),
    }
    let len = pick(body.len(), size);
    // The head parsers never produce Length(0): a zero length is Empty.
    let framing = if len == 0 { BodyFraming::Empty } else { BodyFraming::Length(len as u64) };
    let (got, leftover) = read_body(framing, body, at, read_size, max_out);
    assert_eq!(got, Ok(body[..len].to_vec()));
    assert_eq!(leftover, body[len..]);
});

/// Read a whole body with `BodyReader`: `body[..at]` as the bytes already
/// buffered, the rest from a source handing out `step` bytes a read; app
/// reads of `limit` bytes. Returns the body (or the first error) and the
/// bytes after it.
fn read_body(framing: BodyFraming, body: &[u8], at: usize, step: usize, limit: usize) -> (Result<Vec<u8>, BodyError>, Vec<u8>) {
    let mut reader = BodyReader::new(framing, body[..at].to_vec());
    let mut src = Trickle { data: &body[at..], step };
    let mut got = Vec::new();
    let result = loop {
        match reader.read(&mut src, Some(limit)) {
            Ok(part) if part.is_empty() => break Ok(got),
            Ok(part) => {
                assert!(part.len() <= limit);
                got.extend(part);
            }
            Err(e) => {
                // Errors stick.
                assert_eq!(reader.read(&mut src, Some(1)), Err(e));
                break Err(e);
            }
        }
    };
    let mut leftover = reader.into_leftover();
    leftover.extend_from_slice(src.data);
    (result, leftover)
}

//! `rwsgi::http::parse_request` on arbitrary bytes.
//!
//! Input: 5 config bytes, then the buffer.
//! - byte 0: limits (bits 0-1: default, small, unlimited, custom from
//!   bytes 1-3; bit 2: `--permit-obsolete-folding`; bit 3:
//!   `--permit-unconventional-http-method`)
//! - bytes 1-3: custom request-line limit, field count, field size
//! - byte 4: which shorter prefix to try besides the obvious ones
//!
//! Properties:
//! - no panic;
//! - Complete: `head_len <= buf.len()`, and without leading empty lines
//!   `<= max_head_len(limits)` (folds included); the request, serialized again
//!   (request line, `name:value` lines as parsed, CRLF) parses to an equal
//!   request but for `head_len`, which is the serialized length;
//!   `buf[..head_len]` parses to the very same request; prefixes shorter
//!   than `head_len` are Partial (`head_len - 1`, `- 2`, `- 4`, the ends of
//!   the first 16 lines, and a chosen one);
//! - Err: no prefix is Complete (tried at each CRLFCRLF, up to 4, and a
//!   chosen one);
//! - Partial: no prefix is Complete (the chosen one). A prefix may be an
//!   error when the whole is Partial: rwsgi may report an error only once
//!   the head is whole (obs-fold permitted), which is allowed.
//!
//! With obs-fold permitted, a head is held to `max_head_len` as received
//! (folds included), so one over it is an error on every split, never
//! Complete (regression seed `corpus/http_head/regression-k1`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::config::RequestLimits;
use rwsgi::http::{max_head_len, parse_request, HttpError, Parse, Request};
use rwsgi_fuzz::{limits_from, pick, serialize_head, without_head_len};

type Res = Result<Parse<Request>, HttpError>;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let limits = limits_from(data[0], data[1], data[2], data[3]);
    let chosen = data[4];
    let buf = &data[5..];
    let full = parse_request(buf, &limits);
    match &full {
        Ok(Parse::Complete(req)) => complete(buf, &limits, req, chosen),
        Ok(Parse::Partial) => {
            let k = pick(buf.len(), chosen);
            let r = parse_request(&buf[..k], &limits);
            assert!(!matches!(r, Ok(Parse::Complete(_))), "prefix {k} of a Partial buffer is {r:?}");
        }
        Err(_) => {
            let mut prefixes: Vec<usize> = buf
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == b"\r\n\r\n")
                .map(|(i, _)| i + 4)
                .take(4)
                .collect();
            prefixes.push(pick(buf.len(), chosen));
            for k in prefixes {
                let r = parse_request(&buf[..k], &limits);
                assert!(
                    !matches!(r, Ok(Parse::Complete(_))),
                    "whole buffer is {full:?} but prefix {k} is {r:?}"
                );
            }
        }
    }
});

fn complete(buf: &[u8], limits: &RequestLimits, req: &Request, chosen: u8) {
    let n = req.head_len;
    assert!(n <= buf.len(), "head_len {n} > buffer {}", buf.len());
    assert!(n >= 4 && &buf[n - 4..n] == b"\r\n\r\n", "head does not end in CRLFCRLF");
    // Held to max_head_len as received (leading empty lines aside), folds
    // included: a longer head is refused while incomplete, so it must not
    // be accepted whole.
    let skip = buf.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
    assert!(n - skip <= max_head_len(limits), "head of {} bytes (after {skip} of empty lines) > max_head_len {}", n - skip, max_head_len(limits));

    // Nothing past the head was read.
    let exact = parse_request(&buf[..n], limits);
    assert_eq!(exact.as_ref().ok(), Some(&Parse::Complete(req.clone())), "buf[..head_len] parses differently");

    // Shorter prefixes are not complete yet, and not wrong either.
    let line_ends = buf[..n - 1].iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1).take(16);
    let prefixes = [n - 1, n - 2, n - 4, pick(n - 1, chosen)].into_iter().chain(line_ends);
    for k in prefixes {
        let r: Res = parse_request(&buf[..k], limits);
        assert_eq!(r, Ok(Parse::Partial), "prefix {k} of a head of {n} bytes");
    }

    // Round trip through the serializer.
    let wire = serialize_head(req);
    match parse_request(&wire, limits) {
        Ok(Parse::Complete(again)) => {
            assert_eq!(without_head_len(&again), without_head_len(req), "re-serialized head {:?}", String::from_utf8_lossy(&wire));
            assert_eq!(again.head_len, wire.len());
        }
        other => panic!("re-serialized head {:?} gives {other:?}", String::from_utf8_lossy(&wire)),
    }
}

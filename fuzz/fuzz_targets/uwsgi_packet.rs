//! `rwsgi::uwsgi::parse_packet` and `encode_packet`.
//!
//! Input: byte 0 picks the mode.
//! - even: raw mode. Bytes 1-3 are custom limits (see `limits_from`,
//!   which gets `byte0 >> 1`), byte 4 picks a prefix, the rest is the
//!   packet as received.
//! - odd: structured mode. The rest drives `arbitrary`: limits, a list of
//!   variables (nginx's `uwsgi_params` names and values, or arbitrary
//!   ones), optional damage to the header, and bytes after the packet.
//!   This reaches deep states (a whole valid block) that byte mutations
//!   find slowly.
//!
//! Properties (both modes):
//! - no panic;
//! - Complete: `head_len == 4 + block size <= buf.len()`; `buf[..head_len]`
//!   parses to the same request; shorter prefixes are Partial;
//!   `encode_packet` of the request parses to an equal request (but for
//!   `head_len`, which is the encoded length);
//! - Err: shorter prefixes are Partial or the same error.
//!
//! Structured mode, for an undamaged packet that parses, also checks the
//! request against a model of the variables: method, params (in order,
//! then `REQUEST_URI` = the target, which rwsgi adds for uWSGI apps),
//! headers, version, framing, target. Headers, in order: a non-empty
//! `CONTENT_LENGTH` as `Content-Length` (value as sent); a `CONTENT_TYPE`
//! not empty after trimming SP/HTAB as `Content-Type` (trimmed); `HTTP_*`
//! as the name after `HTTP_` with `_` -> `-` (trimmed value), except that
//! an `HTTP_*` whose name is content-length, content-type or
//! transfer-encoding (any case) is dropped entirely: no header, no param
//! (regression seeds `corpus/uwsgi_packet/regression-k2*`).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rwsgi::config::RequestLimits;
use rwsgi::http::{BodyFraming, Parse, Request, Version};
use rwsgi::uwsgi::{encode_packet, parse_packet, UwsgiError};
use rwsgi_fuzz::{limits_from, pick, without_head_len};

const KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "REQUEST_URI",
    "QUERY_STRING",
    "PATH_INFO",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "SERVER_PROTOCOL",
    "HTTP_HOST",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_CONTENT_LENGTH",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_EXPECT",
    "HTTP_CONNECTION",
    "HTTP_",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTPS",
    "REQUEST_SCHEME",
    "UWSGI_SCHEME",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "SCRIPT_NAME",
    "wsgi.input",
    "HTTP_Content-Type",
    "HTTP_TRANSFER-ENCODING",
    "HTTP_content_length",
];

const VALUES: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"CONNECT",
    b"/",
    b"/a/b?c=d&e",
    b"/%2F?q#frag",
    b"*",
    b"",
    b" ",
    b"0",
    b"5",
    b"007",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-1",
    b"5, 5",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"chunked",
    b"on",
    b"https",
    b"127.0.0.1",
    b"example.com:8080",
    b" padded\t",
    b"100-continue",
    b"text/plain; charset=utf-8",
    b"\xe9t\xe9",
    b"a\x00b",
    b"a\r\nb",
    b"\t \t",
];

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    /// `HTTP_` + these bytes.
    Http(Vec<u8>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Known(u8),
    Number(u64),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Packet {
    limits: (u8, u8, u8, u8),
    vars: Vec<(Key, Value)>,
    /// Set modifier1/modifier2, or add to the block size (0 = intact).
    damage: Option<(u8, u8, i16)>,
    body: Vec<u8>,
    chosen: u8,
}

fn key_bytes(k: &Key) -> Vec<u8> {
    match k {
        Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].as_bytes().to_vec(),
        Key::Http(rest) => [b"HTTP_".as_slice(), rest].concat(),
        Key::Raw(b) => b.clone(),
    }
}

fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Known(i) => VALUES[usize::from(*i) % VALUES.len()].to_vec(),
        Value::Number(n) => n.to_string().into_bytes(),
        Value::Raw(b) => b.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(&mode) = data.first() else { return };
    if mode & 1 == 0 {
        if data.len() < 5 {
            return;
        }
        let limits = limits_from(mode >> 1, data[1], data[2], data[3]);
        let _ = check(&data[5..], &limits, data[4]);
    } else {
        let Ok(p) = Packet::arbitrary_take_rest(Unstructured::new(&data[1..])) else { return };
        structured(&p);
    }
});

fn structured(p: &Packet) {
    let limits = limits_from(p.limits.0, p.limits.1, p.limits.2, p.limits.3);
    let vars: Vec<(Vec<u8>, Vec<u8>)> = p.vars.iter().map(|(k, v)| (key_bytes(k), value_bytes(v))).collect();
    let mut block = Vec::new();
    for (k, v) in &vars {
        let (Ok(kl), Ok(vl)) = (u16::try_from(k.len()), u16::try_from(v.len())) else { return };
        block.extend_from_slice(&kl.to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&vl.to_le_bytes());
        block.extend_from_slice(v);
    }
    let Ok(mut size) = u16::try_from(block.len()) else { return };
    let (mut m1, mut m2) = (0u8, 0u8);
    let damaged = p.damage.is_some_and(|d| d != (0, 0, 0));
    if let Some((a, b, delta)) = p.damage {
        (m1, m2) = (a, b);
        size = size.wrapping_add_signed(delta);
    }
    let mut buf = vec![m1];
    buf.extend_from_slice(&size.to_le_bytes());
    buf.push(m2);
    buf.extend_from_slice(&block);
    buf.extend_from_slice(&p.body);
    let result = check(&buf, &limits, p.chosen);
    if !damaged {
        if let Ok(Parse::Complete(req)) = &result {
            model(&vars, req, block.len());
        }
    }
}

/// What the variables say the request is.
fn model(vars: &[(Vec<u8>, Vec<u8>)], req: &Request, block_len: usize) {
    assert_eq!(req.head_len, 4 + block_len);
    let key = |k: &[u8]| String::from_utf8(k.to_vec()).unwrap();
    let last = |name: &str| vars.iter().rev().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.clone());
    assert_eq!(Some(req.method.as_bytes().to_vec()), last("REQUEST_METHOD"), "method");
    // Not params: the variables that frame the request or become headers
    // (every `HTTP_*`, also the dropped ones).
    let special = |k: &[u8]| {
        matches!(k, b"REQUEST_METHOD" | b"REQUEST_URI" | b"CONTENT_LENGTH" | b"CONTENT_TYPE")
            || (k.starts_with(b"HTTP_") && k.len() > 5)
    };
    let mut params: Vec<(String, Vec<u8>)> =
        vars.iter().filter(|(k, _)| !special(k)).map(|(k, v)| (key(k), v.clone())).collect();
    params.push(("REQUEST_URI".into(), req.target.as_bytes().to_vec()));
    assert_eq!(req.params, params, "params");
    let trim = |v: &[u8]| {
        let ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
        let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
        v[start..end].to_vec()
    };
    let headers: Vec<(String, Vec<u8>)> = vars
        .iter()
        .filter_map(|(k, v)| match k.as_slice() {
            b"CONTENT_LENGTH" => (!v.is_empty()).then(|| ("Content-Length".to_string(), v.clone())),
            b"CONTENT_TYPE" => Some(("Content-Type".to_string(), trim(v))).filter(|(_, t)| !t.is_empty()),
            k if k.starts_with(b"HTTP_") && k.len() > 5 => {
                let name = key(&k[5..]).replace('_', "-");
                let framing = ["content-length", "content-type", "transfer-encoding"];
                (!framing.iter().any(|f| name.eq_ignore_ascii_case(f))).then(|| (name, trim(v)))
            }
            _ => None,
        })
        .collect();
    let got: Vec<(String, Vec<u8>)> = req.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
    assert_eq!(got, headers, "headers");
    let http10 = vars.iter().any(|(k, v)| k == b"SERVER_PROTOCOL" && v == b"HTTP/1.0");
    assert_eq!(req.version, if http10 { Version::Http10 } else { Version::Http11 }, "version");
    let length = vars
        .iter()
        .rev()
        .find(|(k, v)| k == b"CONTENT_LENGTH" && !v.is_empty())
        .map(|(_, v)| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap());
    let framing = match length {
        None | Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
    };
    assert_eq!(req.framing, framing, "framing");
    if let Some(uri) = last("REQUEST_URI") {
        assert_eq!(req.target.as_bytes(), uri.as_slice(), "target");
    }
}

fn check(buf: &[u8], limits: &RequestLimits, chosen: u8) -> Result<Parse<Request>, UwsgiError> {
    let full = parse_packet(buf, limits);
    match &full {
        Ok(Parse::Complete(req)) => {
            let n = req.head_len;
            assert!(n <= buf.len(), "head_len {n} > buffer {}", buf.len());
            assert!(n >= 4 && n == 4 + usize::from(u16::from_le_bytes([buf[1], buf[2]])), "head_len {n}");
            let exact = parse_packet(&buf[..n], limits);
            assert_eq!(exact.as_ref().ok(), Some(&Parse::Complete(req.clone())), "buf[..head_len] parses differently");
            for k in [n - 1, 3, pick(n - 1, chosen)] {
                assert_eq!(parse_packet(&buf[..k], limits), Ok(Parse::Partial), "prefix {k} of a packet of {n}");
            }
            round_trip(req, limits);
        }
        Ok(Parse::Partial) => {
            let k = pick(buf.len(), chosen);
            assert_eq!(parse_packet(&buf[..k], limits), Ok(Parse::Partial), "prefix {k} of a Partial buffer");
        }
        Err(e) => {
            for k in [buf.len().saturating_sub(1), 3.min(buf.len()), pick(buf.len(), chosen)] {
                let r = parse_packet(&buf[..k], limits);
                assert!(r == Ok(Parse::Partial) || r == Err(*e), "whole is {e:?}, prefix {k} is {r:?}");
            }
        }
    }
    full
}

fn round_trip(req: &Request, limits: &RequestLimits) {
    let Some(packet) = encode_packet(req) else {
        // Only when a variable or the block outgrows a u16.
        let big = req.target.len() + req.method.len() + 64
            + req.headers.iter().map(|h| h.name.len() + h.value.len() + 9).sum::<usize>()
            + req.params.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>();
        assert!(big > usize::from(u16::MAX), "encode_packet refused a small request: {req:?}");
        return;
    };
    match parse_packet(&packet, limits) {
        Ok(Parse::Complete(again)) => {
            assert_eq!(without_head_len(&again), without_head_len(req), "encode_packet round trip");
            assert_eq!(again.head_len, packet.len());
        }
        other => panic!("encode_packet of {req:?} parses as {other:?}"),
    }
}

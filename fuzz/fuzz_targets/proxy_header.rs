//! `rwsgi::proxy::parse` (PROXY protocol v1 and v2) and `encode`.
//!
//! Input: byte 0 picks the mode.
//! - even: raw mode. Byte 1 picks a prefix; the rest is what the
//!   connection starts with, parsed in each of `Off`, `V1`, `V2`, `Auto`.
//! - odd: structured mode. The rest drives `arbitrary`: a version, source
//!   and destination addresses (IPv4 or IPv6) and bytes that follow the
//!   header; `encode` builds the header.
//!
//! Properties, raw mode, for each mode:
//! - no panic; `Off` never yields a header;
//! - Complete: `len <= buf.len()`; `buf[..len]` gives the same header, and
//!   so does `buf[..len]` followed by other bytes; every shorter prefix is
//!   Partial (a header must not be read differently depending on how TCP
//!   splits it);
//! - V1 Complete: the line is printable ASCII (0x20-0x7e), then CRLF,
//!   at most 107 bytes;
//! - Partial: a chosen prefix is Partial too; Err: no prefix is Complete;
//! - `Auto` gives what `V1` or `V2` gives whenever that one is not an error.
//!
//! Structured mode: `encode(version, src, dst)` followed by other bytes
//! parses (in that version's mode and in `Auto`) to a header as long as the
//! encoding whose source is `src`. With one IPv4 and one IPv6 address both
//! v1 (`TCP6`) and v2 write IPv6, the IPv4 address mapped (`::ffff:a.b.c.d`),
//! so an IPv4 source comes back IPv4-mapped (regression seed
//! `corpus/proxy_header/regression-k3`). A v1 line with a bare LF or other
//! control byte before its CR is an error on every split (regression seeds
//! `regression-k4a`, `regression-k4b`).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rwsgi::config::ProxyProtocol;
use rwsgi::http::Parse;
use rwsgi::proxy::{encode, parse, ProxyError, ProxyHeader};
use rwsgi_fuzz::pick;

const MODES: [ProxyProtocol; 4] = [ProxyProtocol::Off, ProxyProtocol::V1, ProxyProtocol::V2, ProxyProtocol::Auto];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Ip {
    fn get(self) -> IpAddr {
        match self {
            Ip::V4(o) => Ipv4Addr::from(o).into(),
            Ip::V6(o) => Ipv6Addr::from(o).into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Encoded {
    version: u8,
    src: (Ip, u16),
    dst: (Ip, u16),
    tail: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let Some(&mode) = data.first() else { return };
    if mode & 1 == 0 {
        if data.len() < 2 {
            return;
        }
        raw(&data[2..], data[1]);
    } else if let Ok(e) = Encoded::arbitrary_take_rest(Unstructured::new(&data[1..])) {
        structured(&e);
    }
});

fn raw(buf: &[u8], chosen: u8) {
    let results: Vec<Result<Parse<ProxyHeader>, ProxyError>> = MODES.iter().map(|&m| parse(buf, m)).collect();
    assert!(results[0].is_err(), "Off read a header: {:?}", results[0]);
    for (&mode, result) in MODES.iter().zip(&results) {
        match result {
            Ok(Parse::Complete(h)) => {
                let n = h.len;
                assert!(n > 0 && n <= buf.len(), "{mode:?}: len {n} > buffer {}", buf.len());
                if mode == ProxyProtocol::V1 {
                    // A v1 line: printable ASCII, then CRLF, 107 bytes at most.
                    let line = &buf[..n];
                    assert!(n <= 107 && line.ends_with(b"\r\n"), "V1: line of {n} bytes {line:?}");
                    assert!(line[..n - 2].iter().all(|b| (0x20..=0x7e).contains(b)), "V1: control byte in {line:?}");
                }
                assert_eq!(parse(&buf[..n], mode), Ok(Parse::Complete(*h)), "{mode:?}: buf[..len]");
                let mut more = buf[..n].to_vec();
                more.extend_from_slice(b"\r\n\r\n\0\r\nQUIT\nPROXY \xff\n");
                assert_eq!(parse(&more, mode), Ok(Parse::Complete(*h)), "{mode:?}: other bytes after the header");
                for k in 0..n {
                    assert_eq!(parse(&buf[..k], mode), Ok(Parse::Partial), "{mode:?}: prefix {k} of a {n}-byte header {:?}", String::from_utf8_lossy(&buf[..n]));
                }
            }
            Ok(Parse::Partial) => {
                let k = pick(buf.len(), chosen);
                assert_eq!(parse(&buf[..k], mode), Ok(Parse::Partial), "{mode:?}: prefix {k} of a Partial buffer");
            }
            Err(_) => {
                let k = pick(buf.len(), chosen);
                let r = parse(&buf[..k], mode);
                assert!(!matches!(r, Ok(Parse::Complete(_))), "{mode:?}: whole is {result:?}, prefix {k} is {r:?}");
            }
        }
    }
    for single in [&results[1], &results[2]] {
        if single.is_ok() {
            assert_eq!(&results[3], single, "Auto differs from the single version");
        }
    }
}

fn structured(e: &Encoded) {
    let version = [ProxyProtocol::Off, ProxyProtocol::V1, ProxyProtocol::V2, ProxyProtocol::Auto][usize::from(e.version % 4)];
    let src = SocketAddr::new(e.src.0.get(), e.src.1);
    let dst = SocketAddr::new(e.dst.0.get(), e.dst.1);
    let header = encode(version, src, dst);
    // Everything but V2 is encoded as a v1 line.
    let mode = if version == ProxyProtocol::V2 { ProxyProtocol::V2 } else { ProxyProtocol::V1 };
    // Mixed families are written as IPv6 in both versions: an IPv4 source
    // comes back IPv4-mapped.
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V6(_)) => IpAddr::V6(s.to_ipv6_mapped()),
        (s, _) => s,
    };
    let want = SocketAddr::new(ip, src.port());
    let want = ProxyHeader { source: Some(want), len: header.len() };
    let mut buf = header.clone();
    buf.extend_from_slice(&e.tail);
    for m in [mode, ProxyProtocol::Auto] {
        assert_eq!(
            parse(&buf, m),
            Ok(Parse::Complete(want)),
            "{m:?}: encode({version:?}, {src}, {dst}) = {:?}",
            String::from_utf8_lossy(&header)
        );
    }
}

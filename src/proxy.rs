//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load
//! balancer puts at the start of a connection to say which client it
//! carries. Pure: bytes in, `Partial`, the header, or an error out.
//!
//! v1 is one text line, at most 107 bytes:
//! `PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n` (`TCP6`, or `UNKNOWN`
//! when the proxy cannot tell). v2 is binary: a 12-byte signature, a
//! version/command byte, a family/transport byte, a big-endian u16 length,
//! then the addresses and optional TLVs. A `LOCAL` command (the proxy's own
//! health check) and `UNKNOWN`/`UNSPEC` addresses leave the connection's
//! own peer in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::ProxyProtocol;
use crate::http::Parse;

/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;
/// The largest v2 address block rwsgi accepts (addresses and TLVs).
const V2_MAX_LEN: usize = 1024;
/// The longest PROXY header rwsgi reads, of either version.
pub const MAX_HEADER_LEN: usize = 16 + V2_MAX_LEN;

/// A PROXY header that was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client the proxy speaks for; `None` to keep the socket's peer.
    pub source: Option<SocketAddr>,
    /// Bytes the header took.
    pub len: usize,
}

/// Why a PROXY header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyError(pub &'static str);

/// Read the PROXY header that `mode` expects at the start of `buf`.
pub fn parse(buf: &[u8], mode: ProxyProtocol) -> Result<Parse<ProxyHeader>, ProxyError> {
    let v1 = matches!(mode, ProxyProtocol::V1 | ProxyProtocol::Auto);
    let v2 = matches!(mode, ProxyProtocol::V2 | ProxyProtocol::Auto);
    // `buf` begins with the signature, or is a beginning of it.
    let starts = |sig: &[u8]| buf.starts_with(sig) || sig.starts_with(buf);
    if v2 && starts(V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() { Ok(Parse::Partial) } else { parse_v2(buf) };
    }
    if v1 && starts(b"PROXY ") {
        return if buf.len() < 6 { Ok(Parse::Partial) } else { parse_v1(buf) };
    }
    Err(ProxyError(match mode {
        ProxyProtocol::V1 => "no PROXY protocol v1 header",
        ProxyProtocol::V2 => "no PROXY protocol v2 header",
        ProxyProtocol::Auto | ProxyProtocol::Off => "no PROXY protocol header",
    }))
}

fn parse_v1(buf: &[u8]) -> Result<Parse<ProxyHeader>, ProxyError> {
    // The line is printable ASCII up to its CR; the first other byte
    // decides, so any split of the same bytes gives the same answer.
    let window = &buf[..buf.len().min(V1_MAX)];
    let cr = match window.iter().position(|b| !(0x20..=0x7e).contains(b)) {
        None if buf.len() >= V1_MAX => return Err(ProxyError("PROXY v1 line without CRLF within 107 bytes")),
        None => return Ok(Parse::Partial),
        Some(i) if window[i] == b'\r' && i + 2 <= V1_MAX => i,
        Some(i) if window[i] == b'\r' => return Err(ProxyError("PROXY v1 line without CRLF within 107 bytes")),
        Some(_) => return Err(ProxyError("PROXY v1 line with a control byte")),
    };
    match buf.get(cr + 1) {
        None => return Ok(Parse::Partial),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError("PROXY v1 line with a bare CR")),
    }
    let line = std::str::from_utf8(&buf[..cr]).map_err(|_| ProxyError("PROXY v1 line is not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let len = cr + 2;
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Parse::Complete(ProxyHeader { source: None, len })),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            // The destination is checked for form, then not needed.
            let (src, _dst) = match *family {
                "TCP4" => (v1_ip::<Ipv4Addr>(src)?, v1_ip::<Ipv4Addr>(dst)?),
                _ => (v1_ip::<Ipv6Addr>(src)?, v1_ip::<Ipv6Addr>(dst)?),
            };
            let (sport, _dport) = (v1_port(sport)?, v1_port(dport)?);
            Ok(Parse::Complete(ProxyHeader { source: Some(SocketAddr::new(src, sport)), len }))
        }
        _ => Err(ProxyError("malformed PROXY v1 line")),
    }
}

fn v1_ip<T: std::str::FromStr + Into<IpAddr>>(text: &str) -> Result<IpAddr, ProxyError> {
    text.parse::<T>().map(Into::into).map_err(|_| ProxyError("bad address in PROXY v1 line"))
}

/// A port: 1 to 5 digits, no sign or leading zero, at most 65535.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let well_formed = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    well_formed.then(|| text.parse().ok()).flatten().ok_or(ProxyError("bad port in PROXY v1 line"))
}

fn parse_v2(buf: &[u8]) -> Result<Parse<ProxyHeader>, ProxyError> {
    let Some(fixed) = buf.get(..16) else { return Ok(Parse::Partial) };
    let (ver_cmd, family, len) = (fixed[12], fixed[13], usize::from(u16::from_be_bytes([fixed[14], fixed[15]])));
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError("PROXY v2 header with a version other than 2"));
    }
    if len > V2_MAX_LEN {
        return Err(ProxyError("PROXY v2 header longer than 1024 bytes"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError("PROXY v2 header with an unknown command")),
    };
    let Some(body) = buf.get(16..16 + len) else { return Ok(Parse::Partial) };
    let total = 16 + len;
    if local {
        return Ok(Parse::Complete(ProxyHeader { source: None, len: total }));
    }
    let source = match family {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 | 0x12 => {
            let a = body.get(..12).ok_or(ProxyError("PROXY v2 IPv4 block too short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 | 0x22 => {
            let a = body.get(..36).ok_or(ProxyError("PROXY v2 IPv6 block too short"))?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), u16::from_be_bytes([a[32], a[33]])))
        }
        // Unspecified or unix: the proxy has no IP to tell.
        0x00 | 0x31 | 0x32 => None,
        _ => return Err(ProxyError("PROXY v2 header with an unknown address family")),
    };
    Ok(Parse::Complete(ProxyHeader { source, len: total }))
}

/// Build a PROXY header for `source` → `dest` (tests, fuzzing, tools).
pub fn encode(version: ProxyProtocol, source: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            out.push(0x21);
            match (source.ip(), dest.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x11, 0, 12]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.extend_from_slice(&[0x21, 0, 36]);
                    out.extend_from_slice(&to_v6(s).octets());
                    out.extend_from_slice(&to_v6(d).octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&dest.port().to_be_bytes());
            out
        }
        _ if source.is_ipv4() && dest.is_ipv4() => {
            format!("PROXY TCP4 {} {} {} {}\r\n", source.ip(), dest.ip(), source.port(), dest.port()).into_bytes()
        }
        _ => {
            // Mixed families go out as IPv6, IPv4 addresses mapped.
            let (s, d) = (to_v6(source.ip()), to_v6(dest.ip()));
            format!("PROXY TCP6 {s} {d} {} {}\r\n", source.port(), dest.port()).into_bytes()
        }
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn complete(buf: &[u8], mode: ProxyProtocol) -> ProxyHeader {
        match parse(buf, mode) {
            Ok(Parse::Complete(h)) => h,
            other => panic!("{:?}: want a header, got {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn v1_lines() {
        let h = complete(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET /", ProxyProtocol::V1);
        assert_eq!(h, ProxyHeader { source: Some(addr("203.0.113.7:51000")), len: 44 });
        let h = complete(b"PROXY TCP6 2001:db8::1 ::1 65535 80\r\n", ProxyProtocol::Auto);
        assert_eq!(h.source, Some(addr("[2001:db8::1]:65535")));
        let h = complete(b"PROXY UNKNOWN\r\n", ProxyProtocol::V1);
        assert_eq!(h, ProxyHeader { source: None, len: 15 });
        let h = complete(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n", ProxyProtocol::V1);
        assert_eq!(h.source, None);
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 203.0.113.7 192.0.2.1 51000\r\n"[..],
            b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443 x\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
            b"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"GET / HTTP/1.1\r\n",
            b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
        ] {
            assert!(parse(bad, ProxyProtocol::V1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // An LF or control byte before the CR is refused on any split.
        for bad in [&b"PROXY UNKNOWN \n\r\n"[..], b"PROXY UNKNOWN \x01\r\n"] {
            assert!(parse(bad, ProxyProtocol::V1).is_err());
            assert!(parse(&bad[..15], ProxyProtocol::V1).is_err());
        }
        let mixed = encode(ProxyProtocol::V1, addr("1.2.3.4:5"), addr("[::1]:6"));
        assert_eq!(complete(&mixed, ProxyProtocol::V1).source, Some(addr("[::ffff:1.2.3.4]:5")));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        assert!(parse(long.as_bytes(), ProxyProtocol::V1).is_err());
        assert!(parse(&long.as_bytes()[..V1_MAX], ProxyProtocol::V1).is_err(), "no CRLF in 107 bytes");
    }

    #[test]
    fn v2_blocks() {
        let v4 = encode(ProxyProtocol::V2, addr("203.0.113.7:51000"), addr("192.0.2.1:443"));
        assert_eq!(complete(&v4, ProxyProtocol::V2), ProxyHeader { source: Some(addr("203.0.113.7:51000")), len: 28 });
        let v6 = encode(ProxyProtocol::V2, addr("[2001:db8::7]:1234"), addr("[::1]:80"));
        assert_eq!(complete(&v6, ProxyProtocol::Auto).source, Some(addr("[2001:db8::7]:1234")));
        // A LOCAL command (health check) keeps the socket's peer; TLVs
        // after the addresses are skipped.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(complete(&local, ProxyProtocol::V2), ProxyHeader { source: None, len: 16 });
        let mut tlv = v4.clone();
        tlv[15] += 7;
        tlv.extend_from_slice(&[0x04, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(complete(&tlv, ProxyProtocol::V2).len, 35);
    }

    #[test]
    fn v2_refusals() {
        let good = encode(ProxyProtocol::V2, addr("1.2.3.4:5"), addr("6.7.8.9:10"));
        let mut bad_version = good.clone();
        bad_version[12] = 0x11;
        let mut bad_command = good.clone();
        bad_command[12] = 0x22;
        let mut bad_family = good.clone();
        bad_family[13] = 0x41;
        let mut short_block = good.clone();
        short_block[15] = 4;
        short_block.truncate(20);
        let mut too_long = good.clone();
        too_long[14] = 0x04;
        too_long[15] = 0x01;
        for bad in [bad_version, bad_command, bad_family, short_block, too_long] {
            assert!(parse(&bad, ProxyProtocol::V2).is_err(), "{bad:?}");
        }
        // Each mode takes only its own version.
        assert!(parse(&good, ProxyProtocol::V1).is_err());
        assert!(parse(b"PROXY UNKNOWN\r\n", ProxyProtocol::V2).is_err());
    }

    #[test]
    fn every_prefix_is_partial_then_the_same_header() {
        let v1 = encode(ProxyProtocol::V1, addr("10.1.2.3:4567"), addr("10.0.0.1:80"));
        let v2 = encode(ProxyProtocol::V2, addr("[fe80::1]:9"), addr("[fe80::2]:8"));
        for (full, mode) in [(v1, ProxyProtocol::V1), (v2, ProxyProtocol::V2)] {
            let want = complete(&full, ProxyProtocol::Auto);
            assert_eq!(want.len, full.len());
            for k in 0..full.len() {
                assert_eq!(parse(&full[..k], mode), Ok(Parse::Partial), "prefix {k}");
                assert_eq!(parse(&full[..k], ProxyProtocol::Auto), Ok(Parse::Partial), "auto prefix {k}");
            }
            let mut more = full.clone();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(complete(&more, mode), want, "bytes after the header are not its own");
        }
    }
}

//! The uwsgi binary protocol (nginx's `uwsgi_pass`), read into the same
//! [`Request`] that `http` produces.
//!
//! A packet is a 4-byte header — modifier1, the size of the variable block
//! as a little-endian u16, modifier2 — then the block: pairs of
//! little-endian u16 length + key, u16 length + value. The body follows,
//! `CONTENT_LENGTH` bytes of it. The answer is plain HTTP (status line,
//! headers, body) ended by closing the connection.
//!
//! Pure, like `http`: bytes in, `Partial`, a request, or an error out.
//! The variables become the request: `REQUEST_METHOD`, `REQUEST_URI`,
//! `SERVER_PROTOCOL` and `CONTENT_LENGTH` frame it, `HTTP_*` and
//! `CONTENT_TYPE` become its headers, and the rest (`REMOTE_ADDR`,
//! `PATH_INFO`, `HTTPS`, `DOCUMENT_ROOT`, ...) are kept as `params` for the
//! environ. The request is held to the same limits as an HTTP head.

use crate::config::RequestLimits;
use crate::http::{is_field_value, is_token, BodyFraming, Header, HttpError, Parse, Request, Version};

/// Size of the packet header.
pub const HEADER_LEN: usize = 4;
/// The largest packet head: the header and a full variable block.
pub const MAX_PACKET_HEAD: usize = HEADER_LEN + u16::MAX as usize;

/// Why a packet is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UwsgiError {
    /// Not a uwsgi request rwsgi can read; the connection is closed and
    /// the reason logged.
    Malformed(&'static str),
    /// A well-formed packet with a request rwsgi refuses with a status.
    Http(HttpError),
}

impl From<HttpError> for UwsgiError {
    fn from(e: HttpError) -> Self {
        UwsgiError::Http(e)
    }
}

/// Parse the packet head (header and variables) at the start of `buf`.
pub fn parse_packet(buf: &[u8], limits: &RequestLimits) -> Result<Parse<Request>, UwsgiError> {
    if buf.len() < HEADER_LEN {
        // Say early when an HTTP client (or `proxy_pass`) talks to a uwsgi
        // port: modifier1 would be the first letter of a method.
        if buf.first().is_some_and(u8::is_ascii_uppercase) {
            return Err(UwsgiError::Malformed(LOOKS_LIKE_HTTP));
        }
        return Ok(Parse::Partial);
    }
    let (modifier1, size, modifier2) = (buf[0], usize::from(u16::from_le_bytes([buf[1], buf[2]])), buf[3]);
    if modifier1 != 0 || modifier2 != 0 {
        return Err(UwsgiError::Malformed(if modifier1.is_ascii_uppercase() {
            LOOKS_LIKE_HTTP
        } else {
            "unsupported modifier (rwsgi serves modifier1 0, modifier2 0: WSGI requests)"
        }));
    }
    let Some(block) = buf.get(HEADER_LEN..HEADER_LEN + size) else { return Ok(Parse::Partial) };
    let mut req = Request {
        method: String::new(),
        target: String::new(),
        version: Version::Http11,
        headers: Vec::new(),
        framing: BodyFraming::Empty,
        keep_alive: false,
        expect_continue: false,
        head_len: HEADER_LEN + size,
        params: Vec::new(),
    };
    let mut uri: Option<&[u8]> = None;
    for (key, value) in Vars(block) {
        let key = key?;
        if key == "REQUEST_URI" {
            uri = Some(value);
        } else {
            apply_var(&mut req, limits, key, value)?;
        }
    }
    if req.method.is_empty() {
        return Err(UwsgiError::Malformed("no REQUEST_METHOD variable (is 'include uwsgi_params;' missing?)"));
    }
    req.target = match uri {
        Some(u) => target(u, limits)?,
        None => {
            // Without REQUEST_URI, rebuild it from PATH_INFO (decoded: encode
            // it again) and QUERY_STRING.
            let path = req.param("PATH_INFO").filter(|p| !p.is_empty()).unwrap_or(b"/");
            let query = req.param("QUERY_STRING").unwrap_or_default();
            let mut t = percent_encode(path, b"%?#");
            if !query.is_empty() {
                t.push(b'?');
                t.extend(percent_encode(query, b"#"));
            }
            target(&t, limits)?
        }
    };
    // Apps written for uWSGI read REQUEST_URI from the environ.
    req.params.push(("REQUEST_URI".into(), req.target.as_bytes().to_vec()));
    Ok(Parse::Complete(req))
}

/// Put one variable where it belongs in the request: the method, the
/// body's length, a header, or the params kept for the environ.
fn apply_var(req: &mut Request, limits: &RequestLimits, key: &str, value: &[u8]) -> Result<(), UwsgiError> {
    match key {
        "REQUEST_METHOD" => {
            if !is_token(value) {
                return Err(HttpError::InvalidMethod.into());
            }
            req.method = ascii(value);
            crate::http::check_method(&req.method, limits)?;
            if limits.casefold_method {
                req.method.make_ascii_uppercase();
            }
        }
        "CONTENT_LENGTH" => {
            if !value.is_empty() {
                let n = crate::http::parse_content_length(value)?;
                req.framing = if n == 0 { BodyFraming::Empty } else { BodyFraming::Length(n) };
                req.headers.push(Header { name: "Content-Length".into(), value: value.to_vec() });
            }
        }
        "CONTENT_TYPE" => {
            if !crate::http::trim_ows(value).is_empty() {
                push_header(req, limits, "Content-Type".into(), value)?;
            }
        }
        _ if key.starts_with("HTTP_") && key.len() > 5 => {
            let name = key[5..].replace('_', "-");
            // CONTENT_LENGTH and CONTENT_TYPE speak for the body (nginx
            // also passes the client's headers of those names), and nginx
            // has undone any chunked coding: the body that follows is
            // CONTENT_LENGTH bytes.
            let framing = ["content-length", "content-type", "transfer-encoding"];
            if !framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
                push_header(req, limits, name, value)?;
            }
        }
        _ => {
            if key == "SERVER_PROTOCOL" && value == b"HTTP/1.0" {
                req.version = Version::Http10;
            }
            req.params.push((key.to_string(), value.to_vec()));
        }
    }
    Ok(())
}

/// The front end says the client came over https: nginx's `HTTPS $https`,
/// `REQUEST_SCHEME $scheme`, or uWSGI's `UWSGI_SCHEME`. Under uwsgi this is
/// the only source of the scheme: X-Forwarded-* headers arrive as `HTTP_*`
/// variables straight from the client, passed on untouched.
pub fn is_https(req: &Request) -> bool {
    let on = |name| req.param(name).is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
    let https = |name| req.param(name).is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    on("HTTPS") || https("REQUEST_SCHEME") || https("UWSGI_SCHEME")
}

/// The client a front end names, when REMOTE_ADDR is an IP address
/// (REMOTE_PORT may be empty: nginx's realip module knows no port).
pub fn client(req: &Request) -> Option<std::net::SocketAddr> {
    let ip = std::str::from_utf8(req.param("REMOTE_ADDR")?).ok()?.parse().ok()?;
    let port = req.param("REMOTE_PORT").and_then(|p| std::str::from_utf8(p).ok()?.parse().ok()).unwrap_or(0);
    Some(std::net::SocketAddr::new(ip, port))
}

/// Serialize a request back into a packet (the inverse of
/// [`parse_packet`] for what it keeps): for tests, fuzzing and tools.
pub fn encode_packet(req: &Request) -> Option<Vec<u8>> {
    let mut vars: Vec<(String, &[u8])> = vec![
        ("REQUEST_METHOD".into(), req.method.as_bytes()),
        ("REQUEST_URI".into(), req.target.as_bytes()),
    ];
    for h in &req.headers {
        let key = match h.name.as_str() {
            "Content-Length" => "CONTENT_LENGTH".to_string(),
            "Content-Type" => "CONTENT_TYPE".to_string(),
            name => format!("HTTP_{}", name.replace('-', "_")),
        };
        vars.push((key, &h.value));
    }
    // REQUEST_URI went out above, from the target.
    vars.extend(req.params.iter().filter(|(k, _)| k != "REQUEST_URI").map(|(k, v)| (k.clone(), v.as_slice())));
    let mut block = Vec::new();
    for (k, v) in &vars {
        block.extend_from_slice(&u16::try_from(k.len()).ok()?.to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&u16::try_from(v.len()).ok()?.to_le_bytes());
        block.extend_from_slice(v);
    }
    let size = u16::try_from(block.len()).ok()?;
    let mut packet = vec![0];
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    Some(packet)
}

const LOOKS_LIKE_HTTP: &str = "this looks like HTTP, not a uwsgi packet (the front end should use uwsgi_pass, or rwsgi --protocol http)";

/// The key/value pairs of a variable block. A key is printable ASCII; a
/// pair cut short by the end of the block is malformed.
struct Vars<'a>(&'a [u8]);

impl<'a> Iterator for Vars<'a> {
    type Item = (Result<&'a str, UwsgiError>, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let pair = take_field(&mut self.0).and_then(|key| Some((key, take_field(&mut self.0)?)));
        let Some((key, value)) = pair else {
            self.0 = &[];
            return Some((Err(UwsgiError::Malformed("a variable runs past the end of the block")), &[]));
        };
        let key_ok = !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic());
        let key = if key_ok {
            Ok(std::str::from_utf8(key).expect("printable ASCII is UTF-8"))
        } else {
            Err(UwsgiError::Malformed("a variable name that is empty or not printable ASCII"))
        };
        Some((key, value))
    }
}

/// One u16-length-prefixed field from the front of `block`.
fn take_field<'a>(block: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_le_bytes([*block.first()?, *block.get(1)?]));
    let field = block.get(2..2 + len)?;
    *block = &block[2 + len..];
    Some(field)
}

/// An `HTTP_*` or `CONTENT_TYPE` variable as a header, held to the header
/// limits and rules of an HTTP request.
fn push_header(req: &mut Request, limits: &RequestLimits, name: String, value: &[u8]) -> Result<(), HttpError> {
    if req.headers.len() >= limits.fields {
        return Err(HttpError::TooManyHeaders);
    }
    if limits.field_size > 0 && name.len() + 2 + value.len() > limits.field_size {
        return Err(HttpError::HeaderTooLarge);
    }
    if !is_token(name.as_bytes()) {
        return Err(HttpError::InvalidHeaderName);
    }
    if !is_field_value(value) {
        return Err(HttpError::InvalidHeaderValue);
    }
    req.headers.push(Header { name, value: crate::http::trim_ows(value).to_vec() });
    Ok(())
}

/// The request target, held to the rules of an HTTP request line: no
/// space, control byte or DEL, UTF-8 (nginx passes raw UTF-8 on as sent),
/// within `--limit-request-line`.
fn target(t: &[u8], limits: &RequestLimits) -> Result<String, HttpError> {
    if limits.request_line > 0 && t.len() > limits.request_line {
        return Err(HttpError::RequestLineTooLong);
    }
    if t.is_empty() || t.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Err(HttpError::InvalidTarget);
    }
    String::from_utf8(t.to_vec()).map_err(|_| HttpError::InvalidTarget)
}

/// `%XX` for bytes that cannot stand in a target as they are: controls,
/// space, DEL, non-ASCII, and those in `also`.
fn percent_encode(raw: &[u8], also: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b <= 0x20 || b >= 0x7f || also.contains(&b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// Bytes already checked to be ASCII, as a `String`.
fn ascii(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

#[cfg(test)]
mod tests;

//! Table-driven tests for the HTTP/1.x parsing module.
//!
//! Every request case is one row: a name, the input bytes, the limits, and
//! what must come out (a parsed head with its checks, a specific
//! [`HttpError`], or only a status where the exact variant is an
//! implementation detail). Every row also goes through an incremental
//! harness: each prefix `buf[..k]` must be `Partial` until the head is
//! whole and then the very same result; an invalid input may only be
//! `Partial` or the same refusal on any prefix, never `Complete`. A read
//! loop fed 1 and 7 bytes at a time must stop on the same result.
//!
//! Cases are written from RFC 9110 / RFC 9112; the section is cited per
//! group. Rows in `rfc_deviations` describe what the RFC requires where the
//! parser currently disagrees.

use std::collections::HashSet;

use super::chunked::{chunk_header, ChunkedDecoder, LAST_CHUNK};
use super::response::is_hop_by_hop;
use super::*;
use crate::config::RequestLimits;

use BodyFraming::{Chunked, Empty, Length};

const V10: Version = Version::Http10;
const V11: Version = Version::Http11;

/// Gunicorn's defaults.
const DEFAULT: RequestLimits = RequestLimits { request_line: 4094, fields: 100, field_size: 8190, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false, strip_header_spaces: false };
/// Small limits so the boundaries are easy to write: `max_head_len` is
/// (32 + 2) + 4 * 24 + 2 = 132.
const SMALL: RequestLimits = RequestLimits { request_line: 32, fields: 4, field_size: 24, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false, strip_header_spaces: false };
/// The defaults with `--permit-obsolete-folding`.
const FOLD: RequestLimits = RequestLimits { permit_obsolete_folding: true, ..DEFAULT };
/// Folding permitted, with a field size small enough to cross by folding.
const FOLD_SMALL: RequestLimits = RequestLimits { field_size: 24, permit_obsolete_folding: true, ..DEFAULT };
/// The defaults with `--strip-header-spaces`.
const STRIP: RequestLimits = RequestLimits { strip_header_spaces: true, ..DEFAULT };
/// The defaults with `--permit-unconventional-http-method`.
const PERMISSIVE: RequestLimits = RequestLimits { permit_unconventional_method: true, ..DEFAULT };
/// `0` = unlimited for the request line and field size.
const UNLIMITED: RequestLimits = RequestLimits { request_line: 0, fields: 100, field_size: 0, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false, strip_header_spaces: false };

// ---------------------------------------------------------------------------
// Table machinery
// ---------------------------------------------------------------------------

/// What a parsed head must look like.
#[derive(Clone, Debug)]
struct Check {
    method: &'static str,
    target: String,
    version: Version,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    /// `None`: the whole input is the head.
    head_len: Option<usize>,
    /// `None`: not checked. Otherwise every header, in order.
    headers: Option<Vec<(&'static str, Vec<u8>)>>,
}

fn ok(method: &'static str, target: &str, version: Version) -> Check {
    Check {
        method,
        target: target.to_string(),
        version,
        framing: Empty,
        keep_alive: version == V11,
        expect_continue: false,
        head_len: None,
        headers: None,
    }
}

impl Check {
    fn framing(mut self, f: BodyFraming) -> Self {
        self.framing = f;
        self
    }
    fn ka(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }
    fn cont(mut self) -> Self {
        self.expect_continue = true;
        self
    }
    fn hl(mut self, n: usize) -> Self {
        self.head_len = Some(n);
        self
    }
    fn hdrs(mut self, h: Vec<(&'static str, Vec<u8>)>) -> Self {
        self.headers = Some(h);
        self
    }
}

macro_rules! hdrs {
    ($(($n:expr, $v:expr)),* $(,)?) => { vec![$(($n, $v.to_vec())),*] };
}

#[derive(Clone, Debug)]
enum Want {
    Ok(Check),
    /// Refused with exactly this error.
    Fail(HttpError),
    /// Refused with this status; which variant says so is not pinned
    /// (httparse decides, e.g. a bad target byte is reported as a token
    /// error).
    Status(u16),
    /// Not a whole head yet, and not over any limit.
    Partial,
}

impl From<Check> for Want {
    fn from(c: Check) -> Want {
        Want::Ok(c)
    }
}

fn fail(e: HttpError) -> Want {
    Want::Fail(e)
}

fn status(s: u16) -> Want {
    Want::Status(s)
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    limits: RequestLimits,
    want: Want,
}

fn case(name: &'static str, input: impl AsRef<[u8]>, want: impl Into<Want>) -> Case {
    Case { name, input: input.as_ref().to_vec(), limits: DEFAULT, want: want.into() }
}

/// A head followed by `rest` (a body or the next pipelined request); the
/// expected `head_len` is `head.len()`.
fn case_rest(name: &'static str, head: impl AsRef<[u8]>, rest: impl AsRef<[u8]>, want: Check) -> Case {
    let head = head.as_ref();
    let want = if want.head_len.is_none() { want.hl(head.len()) } else { want };
    case(name, cat(&[head, rest.as_ref()]), want)
}

impl Case {
    fn with(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `GET / HTTP/1.1` with `Host: h`, then `extra` (whole lines), then the
/// empty line.
fn get11(extra: &[u8]) -> Vec<u8> {
    cat(&[b"GET / HTTP/1.1\r\nHost: h\r\n", extra, b"\r\n"])
}

/// `POST / HTTP/1.1` with `Host: h`, then `extra`, then the empty line.
fn post11(extra: &[u8]) -> Vec<u8> {
    cat(&[b"POST / HTTP/1.1\r\nHost: h\r\n", extra, b"\r\n"])
}

/// `GET / HTTP/1.0` without Host, then `extra`, then the empty line.
fn get10(extra: &[u8]) -> Vec<u8> {
    cat(&[b"GET / HTTP/1.0\r\n", extra, b"\r\n"])
}

/// A long target or value shortened for a failure message.
fn short(s: &str) -> String {
    if s.len() <= 60 { s.to_string() } else { format!("{}...({} bytes)", &s[..40], s.len()) }
}

fn show(r: &Result<Parse<Request>, HttpError>) -> String {
    match r {
        Ok(Parse::Partial) => "Partial".to_string(),
        Ok(Parse::Complete(req)) => format!(
            "Complete({} {:?} {:?} {:?} ka={} cont={} head_len={} headers={:?})",
            req.method,
            short(&req.target),
            req.version,
            req.framing,
            req.keep_alive,
            req.expect_continue,
            req.head_len,
            req.headers.iter().map(|h| (short(&h.name), short(&String::from_utf8_lossy(&h.value)))).collect::<Vec<_>>()
        ),
        Err(e) => format!("Err({e:?} = {})", e.status().0),
    }
}

/// The whole-buffer result against the row's expectation.
fn check_full(case: &Case, got: &Result<Parse<Request>, HttpError>) -> Result<(), String> {
    let n = case.input.len();
    let mismatch = |what: &str| Err(format!("{what}; got {}", show(got)));
    match (&case.want, got) {
        (Want::Ok(c), Ok(Parse::Complete(r))) => {
            let head_len = c.head_len.unwrap_or(n);
            if r.method != c.method {
                return mismatch(&format!("method: want {:?}", c.method));
            }
            if r.target != c.target {
                return mismatch(&format!("target: want {:?}", c.target));
            }
            if r.version != c.version {
                return mismatch(&format!("version: want {:?}", c.version));
            }
            if r.framing != c.framing {
                return mismatch(&format!("framing: want {:?}", c.framing));
            }
            if r.keep_alive != c.keep_alive {
                return mismatch(&format!("keep_alive: want {}", c.keep_alive));
            }
            if r.expect_continue != c.expect_continue {
                return mismatch(&format!("expect_continue: want {}", c.expect_continue));
            }
            if r.head_len != head_len {
                return mismatch(&format!("head_len: want {head_len}"));
            }
            if let Some(want) = &c.headers {
                let got: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name.as_str(), h.value.as_slice())).collect();
                let want: Vec<(&str, &[u8])> = want.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                if got != want {
                    return mismatch(&format!("headers: want {want:?}"));
                }
            }
            Ok(())
        }
        (Want::Fail(e), Err(g)) if e == g => Ok(()),
        (Want::Status(s), Err(g)) if g.status().0 == *s => Ok(()),
        (Want::Partial, Ok(Parse::Partial)) => Ok(()),
        (Want::Ok(_), _) => mismatch("want Complete"),
        (Want::Fail(e), _) => mismatch(&format!("want Err({e:?})")),
        (Want::Status(s), _) => mismatch(&format!("want an error with status {s}")),
        (Want::Partial, _) => mismatch("want Partial"),
    }
}

/// One prefix's result against the whole-buffer result.
fn check_prefix(case: &Case, k: usize, r: &Result<Parse<Request>, HttpError>, full: &Result<Parse<Request>, HttpError>) -> Result<(), String> {
    let fine = match (&case.want, full) {
        // A valid head: Partial until it is whole, then the same request.
        (Want::Ok(_), Ok(Parse::Complete(req))) => {
            if k < req.head_len { matches!(r, Ok(Parse::Partial)) } else { r == full }
        }
        (Want::Partial, _) => matches!(r, Ok(Parse::Partial)),
        // Same status is enough when the variant is not pinned.
        (Want::Status(_), Err(e)) => match r {
            Ok(Parse::Partial) => true,
            Err(g) => g.status() == e.status(),
            Ok(Parse::Complete(_)) => false,
        },
        (_, Err(_)) => matches!(r, Ok(Parse::Partial)) || r == full,
        _ => unreachable!("check_full ran first"),
    };
    if fine {
        Ok(())
    } else {
        Err(format!("prefix of {k} of {} bytes: got {}; whole input gives {}", case.input.len(), show(r), show(full)))
    }
}

/// Prefix lengths to try: all of them for inputs up to 10 KB; for larger
/// ones the first 1 KiB, a stride, and the neighbourhood of every boundary.
fn prefix_lengths(case: &Case, full: &Result<Parse<Request>, HttpError>) -> Vec<usize> {
    let n = case.input.len();
    if n <= 10_000 {
        return (0..=n).collect();
    }
    let mut ks: Vec<usize> = (0..=1024).collect();
    ks.extend((0..=n).step_by(n / 64));
    let mut marks = vec![n, max_head_len(&case.limits), case.limits.request_line];
    if let Ok(Parse::Complete(r)) = full {
        marks.push(r.head_len);
    }
    for m in marks {
        ks.extend(m.saturating_sub(3)..=m.saturating_add(3));
    }
    ks.retain(|&k| k <= n);
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// A server's read loop: append `step` bytes, parse, stop at the first
/// result that is not `Partial`.
fn read_loop(case: &Case, step: usize) -> Result<Parse<Request>, HttpError> {
    let mut buf = Vec::new();
    for piece in case.input.chunks(step) {
        buf.extend_from_slice(piece);
        match parse_request(&buf, &case.limits) {
            Ok(Parse::Partial) => continue,
            other => return other,
        }
    }
    Ok(Parse::Partial)
}

fn check_case(case: &Case) -> Result<(), String> {
    let full = parse_request(&case.input, &case.limits);
    check_full(case, &full)?;
    for k in prefix_lengths(case, &full) {
        let r = parse_request(&case.input[..k], &case.limits);
        check_prefix(case, k, &r, &full)?;
    }
    // Byte by byte is the same as every prefix; the loop also checks that
    // stopping at the first non-Partial result is right.
    if case.input.len() <= 5_000 {
        for step in [1, 7] {
            let r = read_loop(case, step);
            let same = match (&case.want, &r, &full) {
                (Want::Status(_), Err(a), Err(b)) => a.status() == b.status(),
                _ => r == full,
            };
            if !same {
                return Err(format!("read loop, {step} bytes at a time: got {}; whole input gives {}", show(&r), show(&full)));
            }
        }
    }
    Ok(())
}

fn run_table(cases: &[Case]) {
    let mut names = HashSet::new();
    let mut failures = Vec::new();
    for c in cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
        if let Err(msg) = check_case(c) {
            failures.push(format!("  {}: {}", c.name, msg));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Valid requests
// ---------------------------------------------------------------------------

fn valid_cases() -> Vec<Case> {
    vec![
        // RFC 9112 §3, §3.2.1: origin-form.
        case("get origin-form", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h")])),
        case("get path and query", b"GET /a/b?c=d&e HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "/a/b?c=d&e", V11)),
        case("target with pct-encoding and sub-delims",
            b"GET /%20x;p=1/@:!$&'()*+,=?q=/?:@ HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("GET", "/%20x;p=1/@:!$&'()*+,=?q=/?:@", V11)),
        case("target with empty segments", b"GET //a//b/ HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "//a//b/", V11)),
        case("head", b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", ok("HEAD", "/x", V11)),
        case("put", b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", ok("PUT", "/x", V11)),
        case("delete", b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", ok("DELETE", "/x", V11)),
        case("patch", b"PATCH /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
            ok("PATCH", "/x", V11).framing(Length(2))),
        case("trace", b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", ok("TRACE", "/", V11)),
        // RFC 9110 §9.1: methods are case-sensitive tokens; unknown ones parse.
        case("extension method", b"PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n", ok("PURGE", "/x", V11)),
        case("method with tchar punctuation", b"M-!$%&'*+.^_`|~ / HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("M-!$%&'*+.^_`|~", "/", V11)),
        case("m-search", b"M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n", ok("M-SEARCH", "/", V11)),
        case("method of 20 characters", b"ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("ABCDEFGHIJKLMNOPQRST", "/", V11)),
        // Any token is a method (§9.1), but only the conventional ones
        // pass unless permitted (Gunicorn's rule).
        case("lowercase method is another method", b"get / HTTP/1.1\r\nHost: h\r\n\r\n", ok("get", "/", V11))
            .with(PERMISSIVE),
        case("method with #, permitted", b"M#X / HTTP/1.1\r\nHost: h\r\n\r\n", ok("M#X", "/", V11)).with(PERMISSIVE),
        case("two-letter method, permitted", b"GO / HTTP/1.1\r\nHost: h\r\n\r\n", ok("GO", "/", V11)).with(PERMISSIVE),
        case("lowercase method, permitted and folded", b"get / HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "/", V11))
            .with(RequestLimits { casefold_method: true, ..PERMISSIVE }),
        // RFC 9112 §3.2.4: asterisk-form, OPTIONS only.
        case("options asterisk", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", ok("OPTIONS", "*", V11)),
        case("options origin-form", b"OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n", ok("OPTIONS", "/x", V11)),
        // RFC 9112 §3.2.2: a server MUST accept absolute-form.
        case("absolute-form http", b"GET http://h/a?b HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "http://h/a?b", V11)),
        case("absolute-form https with port", b"POST https://h:8443/p HTTP/1.1\r\nHost: h:8443\r\nContent-Length: 1\r\n\r\n",
            ok("POST", "https://h:8443/p", V11).framing(Length(1))),
        case("absolute-form on 1.0 without host", b"GET http://h/ HTTP/1.0\r\n\r\n", ok("GET", "http://h/", V10)),
        // RFC 9112 §3.2.3: authority-form, CONNECT only.
        case("connect authority-form", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            ok("CONNECT", "example.com:443", V11)),
        case("connect ipv6 literal", b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            ok("CONNECT", "[::1]:8080", V11)),
        // Lenient by choice: a raw UTF-8 target is passed on as sent.
        case("raw utf-8 target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "/caf\u{e9}", V11)),
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line
        // before the request line; it belongs to this head.
        case("leading empty line ignored", b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "/", V11)),
        case("two leading empty lines ignored", b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "/", V11)),

        // RFC 9112 §9.3: persistence. 1.1 persists unless "close";
        // 1.0 only with "keep-alive".
        case("1.0 without host closes", get10(b""), ok("GET", "/", V10).ka(false)),
        case("1.0 with host", get10(b"Host: h\r\n"), ok("GET", "/", V10).ka(false)),
        case("1.0 keep-alive", get10(b"Connection: keep-alive\r\n"), ok("GET", "/", V10).ka(true)),
        case("1.0 keep-alive any case", get10(b"connection: Keep-Alive\r\n"), ok("GET", "/", V10).ka(true)),
        case("1.0 keep-alive in a list", get10(b"Connection: foo ,\tkeep-alive , bar\r\n"), ok("GET", "/", V10).ka(true)),
        case("1.0 keep-alive and close", get10(b"Connection: keep-alive, close\r\n"), ok("GET", "/", V10).ka(false)),
        case("1.0 keep-alive over two lines", get10(b"Connection: upgrade\r\nConnection: keep-alive\r\n"),
            ok("GET", "/", V10).ka(true)),
        case("1.1 default persists", get11(b""), ok("GET", "/", V11).ka(true)),
        case("1.1 connection close", get11(b"Connection: close\r\n"), ok("GET", "/", V11).ka(false)),
        case("1.1 connection close any case", get11(b"connection: CLOSE\r\n"), ok("GET", "/", V11).ka(false)),
        case("1.1 close in a list", get11(b"Connection: Upgrade, close\r\n"), ok("GET", "/", V11).ka(false)),
        case("1.1 close on a second line", get11(b"Connection: foo\r\nConnection: close\r\n"), ok("GET", "/", V11).ka(false)),
        case("1.1 keep-alive", get11(b"Connection: keep-alive\r\n"), ok("GET", "/", V11).ka(true)),
        case("1.1 closed is not close", get11(b"Connection: closed\r\n"), ok("GET", "/", V11).ka(true)),

        // RFC 9110 §5.5, RFC 9112 §5: OWS (SP / HTAB only) is trimmed;
        // everything else in the value is kept.
        case("value ows trimmed", get11(b"X: \t v \t \r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"v")])),
        case("value inner whitespace kept", get11(b"X: a  \tb\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"a  \tb")])),
        case("value without space after colon", get11(b"X:v\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"v")])),
        case("empty value", get11(b"X:\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"")])),
        case("whitespace-only value", get11(b"X: \t \r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"")])),
        // NBSP (0xA0) is obs-text, not OWS: it stays.
        case("value ending in nbsp kept", get11(b"X: v\xa0\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"v\xa0")])),
        case("value starting with nbsp kept", get11(b"X: \xa0v\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"\xa0v")])),
        case("obs-text latin-1", get11(b"X: caf\xe9\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"caf\xe9")])),
        case("obs-text range ends", get11(b"X: \x80\xff\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"\x80\xff")])),
        case("vchar punctuation value", get11(b"X: \"q\" (c) <a> {b} [d] \\ ~ ; , = :\r\n"),
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"\"q\" (c) <a> {b} [d] \\ ~ ; , = :")])),
        case("repeated headers kept in order", get11(b"X: 1\r\nY: 2\r\nx: 3\r\nX: 4\r\n"),
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"1"), ("Y", b"2"), ("x", b"3"), ("X", b"4")])),
        case("header name case kept", b"GET / HTTP/1.1\r\nhOsT: h\r\nCONTENT-length: 3\r\n\r\n",
            ok("GET", "/", V11).framing(Length(3)).hdrs(hdrs![("hOsT", b"h"), ("CONTENT-length", b"3")])),
        case("header name tchar punctuation", get11(b"X-!#$%&'*+.^_`|~9: v\r\n"),
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X-!#$%&'*+.^_`|~9", b"v")])),
        case("value with colon", get11(b"X: a:b: c\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"a:b: c")])),
        // RFC 9110 §7.2: Host may be empty, may carry a port or an IP literal.
        case("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", ok("GET", "/", V11).hdrs(hdrs![("Host", b"")])),
        case("host with port", b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", ok("GET", "/", V11)),
        case("host ipv6 literal", b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", ok("GET", "/", V11)),
        case("host last among headers", b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nHost: h\r\n\r\n", ok("GET", "/", V11)),

        // RFC 9110 §8.6, RFC 9112 §6.3: Content-Length framing.
        case("content-length zero is empty", post11(b"Content-Length: 0\r\n"), ok("POST", "/", V11)),
        case_rest("content-length with body", post11(b"Content-Length: 5\r\n"), b"hello",
            ok("POST", "/", V11).framing(Length(5))),
        case("content-length leading zeros", post11(b"Content-Length: 007\r\n"), ok("POST", "/", V11).framing(Length(7))),
        case("content-length ows", post11(b"Content-Length: \t 12 \t\r\n"), ok("POST", "/", V11).framing(Length(12))),
        case("content-length 19 digits", post11(b"Content-Length: 9999999999999999999\r\n"),
            ok("POST", "/", V11).framing(Length(9_999_999_999_999_999_999))),
        case("content-length on get", get11(b"Content-Length: 3\r\n"), ok("GET", "/", V11).framing(Length(3))),
        case("content-length on 1.0", get10(b"Content-Length: 4\r\n"), ok("GET", "/", V10).ka(false).framing(Length(4))),
        // RFC 9112 §6.1, §7: chunked must be final; coding names are
        // case-insensitive; empty list elements are ignored (RFC 9110 §5.6.1).
        case("chunked", post11(b"Transfer-Encoding: chunked\r\n"), ok("POST", "/", V11).framing(Chunked)),
        case("chunked any case", post11(b"transfer-encoding: ChUnKeD\r\n"), ok("POST", "/", V11).framing(Chunked)),
        case("chunked with ows", post11(b"Transfer-Encoding: \t chunked \t\r\n"), ok("POST", "/", V11).framing(Chunked)),
        case("chunked with empty list elements", post11(b"Transfer-Encoding: , chunked ,\r\n"), ok("POST", "/", V11).framing(Chunked)),
        case_rest("chunked with body", post11(b"Transfer-Encoding: chunked\r\n"), b"5\r\nhello\r\n0\r\n\r\n",
            ok("POST", "/", V11).framing(Chunked)),
        case("chunked on get", get11(b"Transfer-Encoding: chunked\r\n"), ok("GET", "/", V11).framing(Chunked)),
        case("chunked with connection close", post11(b"Transfer-Encoding: chunked\r\nConnection: close\r\n"),
            ok("POST", "/", V11).framing(Chunked).ka(false)),

        // RFC 9110 §10.1.1: Expect: 100-continue, case-insensitive; a
        // server MUST ignore it in an HTTP/1.0 request.
        case("expect 100-continue", post11(b"Expect: 100-continue\r\nContent-Length: 3\r\n"),
            ok("POST", "/", V11).framing(Length(3)).cont()),
        case("expect 100-continue any case", post11(b"expect: 100-CONTINUE\r\nContent-Length: 3\r\n"),
            ok("POST", "/", V11).framing(Length(3)).cont()),
        case("expect 100-continue with ows", post11(b"Expect: \t100-Continue \r\nTransfer-Encoding: chunked\r\n"),
            ok("POST", "/", V11).framing(Chunked).cont()),
        case("expect 100-continue ignored on 1.0", b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            ok("POST", "/", V10).ka(false).framing(Length(3))),

        // RFC 9112 §9.3.2: pipelining; head_len stops at the first head.
        case_rest("pipelined gets", b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("GET", "/1", V11)),
        case_rest("pipelined next is partial", b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /2 HT", ok("GET", "/1", V11)),
        case_rest("pipelined next is invalid", b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /2 HTTP/1.1\nHost: h\n\n",
            ok("GET", "/1", V11)),
        case_rest("pipelined after a body", post11(b"Content-Length: 3\r\n"), b"abcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
            ok("POST", "/", V11).framing(Length(3))),
        // The body is not part of the head: any bytes go.
        case_rest("body with bare lf and cr", post11(b"Content-Length: 6\r\n"), b"a\nb\rc\0",
            ok("POST", "/", V11).framing(Length(6))),
        case_rest("body looks like a head end", post11(b"Content-Length: 4\r\n"), b"\r\n\r\n",
            ok("POST", "/", V11).framing(Length(4))),
    ]
}

#[test]
fn valid_requests() {
    run_table(&valid_cases());
}

// ---------------------------------------------------------------------------
// Invalid requests
// ---------------------------------------------------------------------------

/// RFC 9112 §2.2: line ends. rwsgi refuses a bare LF (the RFC lets a
/// recipient accept it; two parsers disagreeing on it is a smuggling
/// vector) and a recipient MUST treat a bare CR as invalid (or replace it).
fn line_end_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        case("bare lf after request line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", fail(BareLineFeed)),
        case("bare lf after a field", b"GET / HTTP/1.1\r\nHost: h\n\r\n", fail(BareLineFeed)),
        case("bare lf as the empty line", b"GET / HTTP/1.1\r\nHost: h\r\n\n", fail(BareLineFeed)),
        case("lf-only head", b"GET / HTTP/1.1\nHost: h\n\n", fail(BareLineFeed)),
        case("lf before request line", b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", fail(BareLineFeed)),
        case("crlf then lf before request line", b"\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", fail(BareLineFeed)),
        case("bare lf inside a value", get11(b"X: a\nb\r\n"), fail(BareLineFeed)),
        case("bare lf inside a name", get11(b"X\nY: a\r\n"), fail(BareLineFeed)),
        case("bare lf inside the target", b"GET /a\nb HTTP/1.1\r\nHost: h\r\n\r\n", fail(BareLineFeed)),
        case("bare lf, head not finished", b"GET / HTTP/1.1\r\nHost: h\nX: y", fail(BareLineFeed)),
        case("bare cr inside a value", get11(b"X: a\rb\r\n"), fail(Malformed)),
        case("bare cr inside the target", b"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("bare cr after method", b"GET\r / HTTP/1.1\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("cr cr lf", b"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("bare cr at end of a field", get11(b"X: a\r\r\n"), fail(Malformed)),
        case("bare cr as the empty line", b"GET / HTTP/1.1\r\nHost: h\r\n\rX", fail(Malformed)),
    ]
}

/// RFC 9112 §3: request-line = method SP request-target SP HTTP-version;
/// an invalid request line is a 400. RFC 9112 §2.3 / RFC 9110 §2.5: a
/// version this server does not implement is a 505.
fn request_line_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        case("no sp at all", b"GET/ HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("missing version", b"GET /\r\nHost: h\r\n\r\n", status(400)),
        case("method only", b"GET\r\nHost: h\r\n\r\n", status(400)),
        case("two sp after method", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("htab as separator", b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("trailing sp after version", b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", status(400)),
        case("trailing htab after version", b"GET / HTTP/1.1\t\r\nHost: h\r\n\r\n", status(400)),
        case("three-digit version", b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", status(400)),
        case("junk after version", b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", status(400)),
        case("empty request line", b"\r\n\r\n", Want::Partial),
        // RFC 9112 §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT,
        // case-sensitive; anything else is a bad request line (400), not
        // an unsupported version (505, RFC 9110 §15.6.6).
        case("lowercase version", b"GET / http/1.1\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("garbage version", b"GET / FOO\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("version without minor", b"GET / HTTP/1\r\nHost: h\r\n\r\n", fail(Malformed)),
        case("version with two-digit major", b"GET / HTTP/11.1\r\nHost: h\r\n\r\n", status(400)),
        case("version with space", b"GET / HTTP /1.1\r\nHost: h\r\n\r\n", status(400)),
        case("empty version", b"GET / \r\nHost: h\r\n\r\n", fail(Malformed)),
        // Methods are tokens (RFC 9110 §9.1, §5.6.2).
        case("empty method", b" / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with paren", b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with quote", b"GE\"T / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with at", b"GET@ / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with slash", b"GE/T / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with control byte", b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with del", b"GET\x7f / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with utf-8", b"G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        // Gunicorn's conventional methods: no lowercase, no #, 3 to 20
        // characters (any token with --permit-unconventional-http-method).
        case("lowercase method", b"get / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("mixed-case method", b"Get / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method with #", b"M#X / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("two-letter method", b"GO / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        case("method of 21 characters", b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidMethod)),
        // Fields that may appear once (RFC 9110 §5.3), even with equal values.
        case("two content-types", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
            fail(DuplicateField)),
        case("two equal content-types", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a\r\ncontent-type: a\r\n\r\n",
            fail(DuplicateField)),
        case("two authorizations", b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
            fail(DuplicateField)),
        // Versions: only HTTP/1.0 and HTTP/1.1 are served.
        case("http/2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", fail(UnsupportedVersion)),
        case("http/3.0", b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", fail(UnsupportedVersion)),
        case("http/0.9", b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", fail(UnsupportedVersion)),
        // RFC 9110 §2.5 says a higher 1.x minor SHOULD be served as 1.1;
        // rwsgi refuses it (see the report).
        case("http/1.2", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", fail(UnsupportedVersion)),
        case("http/9.9", b"GET / HTTP/9.9\r\nHost: h\r\n\r\n", fail(UnsupportedVersion)),
        // RFC 9112 §3.2: the target is one token of URI characters; no
        // whitespace or control bytes.
        case("nul in target", b"GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("control byte in target", b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("escape in target", b"GET /a\x1bb HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("del in target", b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("htab in target", b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("invalid utf-8 in target", b"GET /a\xffb HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        // RFC 9112 §3.2.4: "*" only with OPTIONS.
        case("asterisk with get", b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("asterisk with post", b"POST * HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("asterisk with connect", b"CONNECT * HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("asterisk plus more", b"OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        // RFC 9112 §3.2.3: authority-form only with CONNECT, and CONNECT
        // only with authority-form (host ":" port).
        case("authority-form with get", b"GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("authority-form with options", b"OPTIONS h:80 HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("connect with origin-form", b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("connect without port", b"CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("relative target", b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("query-only target", b"GET ?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
        case("other scheme", b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
    ]
}

/// RFC 9112 §5, RFC 9110 §5.1, §5.5: field syntax.
fn field_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        // RFC 9112 §5.1: no whitespace between name and colon; MUST 400.
        case("space before colon", get11(b"X : v\r\n"), fail(InvalidHeaderName)),
        case("htab before colon", get11(b"X\t: v\r\n"), fail(InvalidHeaderName)),
        case("space before colon on host", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", fail(InvalidHeaderName)),
        // RFC 9112 §5.2 obs-fold and §2.2 whitespace before the first
        // field line are in `deviation_cases` (the error variant depends on
        // where the read ends).
        // RFC 9110 §5.1: field-name = token.
        case("empty name", get11(b": v\r\n"), fail(InvalidHeaderName)),
        case("no colon", get11(b"X v\r\n"), fail(InvalidHeaderName)),
        case("name only", get11(b"X\r\n"), fail(InvalidHeaderName)),
        case("name with paren", get11(b"X(y): v\r\n"), fail(InvalidHeaderName)),
        case("name with slash", get11(b"X/y: v\r\n"), fail(InvalidHeaderName)),
        case("name with at", get11(b"X@y: v\r\n"), fail(InvalidHeaderName)),
        case("name with quote", get11(b"X\"y: v\r\n"), fail(InvalidHeaderName)),
        case("name with brace", get11(b"X{y}: v\r\n"), fail(InvalidHeaderName)),
        case("name with nul", get11(b"X\x00y: v\r\n"), fail(InvalidHeaderName)),
        case("name with del", get11(b"X\x7f: v\r\n"), fail(InvalidHeaderName)),
        case("name with obs-text", get11(b"X\xe9: v\r\n"), fail(InvalidHeaderName)),
        case("name with space inside", get11(b"X Y: v\r\n"), fail(InvalidHeaderName)),
        // RFC 9110 §5.5: no CTLs but HTAB in a value; NUL MUST be refused
        // (or replaced).
        case("nul in value", get11(b"X: a\x00b\r\n"), fail(InvalidHeaderValue)),
        case("nul at end of value", get11(b"X: a\x00\r\n"), fail(InvalidHeaderValue)),
        case("control byte in value", get11(b"X: a\x01b\r\n"), fail(InvalidHeaderValue)),
        case("unit separator in value", get11(b"X: a\x1fb\r\n"), fail(InvalidHeaderValue)),
        case("del in value", get11(b"X: a\x7fb\r\n"), fail(InvalidHeaderValue)),
        // VT and FF are CTLs, not OWS: refused, not trimmed.
        case("value ending in vt", get11(b"X: v\x0b\r\n"), fail(InvalidHeaderValue)),
        case("value starting with vt", get11(b"X: \x0bv\r\n"), fail(InvalidHeaderValue)),
        case("value ending in ff", get11(b"X: v\x0c\r\n"), fail(InvalidHeaderValue)),
        case("nul in host", b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n", fail(InvalidHeaderValue)),
    ]
}

/// RFC 9112 §3.2: a 1.1 request without Host, or any request with more
/// than one Host field line, MUST get a 400.
fn host_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        case("missing host", b"GET / HTTP/1.1\r\n\r\n", fail(MissingHost)),
        case("missing host with other fields", b"GET / HTTP/1.1\r\nX: h\r\n\r\n", fail(MissingHost)),
        case("missing host with absolute-form", b"GET http://h/ HTTP/1.1\r\n\r\n", fail(MissingHost)),
        case("missing host on options", b"OPTIONS * HTTP/1.1\r\n\r\n", fail(MissingHost)),
        case("host-like name is not host", b"GET / HTTP/1.1\r\nHosts: h\r\nX-Host: h\r\n\r\n", fail(MissingHost)),
        case("duplicate host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", fail(DuplicateField)),
        case("duplicate host equal values", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", fail(DuplicateField)),
        case("duplicate host case differs", b"GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", fail(DuplicateField)),
        case("duplicate host apart", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nHost: b\r\n\r\n", fail(DuplicateField)),
        case("duplicate host one empty", b"GET / HTTP/1.1\r\nHost:\r\nHost: a\r\n\r\n", fail(DuplicateField)),
        case("duplicate host on 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", fail(DuplicateField)),
    ]
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT; RFC 9112 §6.3 (5): an invalid
/// or conflicting Content-Length is unrecoverable (400), (3): with
/// Transfer-Encoding it is refused as a smuggling attempt.
fn content_length_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        case("cl plus sign", post11(b"Content-Length: +5\r\n"), fail(InvalidContentLength)),
        case("cl minus sign", post11(b"Content-Length: -5\r\n"), fail(InvalidContentLength)),
        case("cl space inside", post11(b"Content-Length: 5 5\r\n"), fail(InvalidContentLength)),
        case("cl htab inside", post11(b"Content-Length: 5\t5\r\n"), fail(InvalidContentLength)),
        case("cl hex", post11(b"Content-Length: 0x5\r\n"), fail(InvalidContentLength)),
        case("cl hex digits", post11(b"Content-Length: 5a\r\n"), fail(InvalidContentLength)),
        case("cl decimal point", post11(b"Content-Length: 1.0\r\n"), fail(InvalidContentLength)),
        case("cl exponent", post11(b"Content-Length: 1e3\r\n"), fail(InvalidContentLength)),
        case("cl empty", post11(b"Content-Length:\r\n"), fail(InvalidContentLength)),
        case("cl whitespace only", post11(b"Content-Length:  \t \r\n"), fail(InvalidContentLength)),
        case("cl nbsp after", post11(b"Content-Length: 5\xa0\r\n"), fail(InvalidContentLength)),
        case("cl nbsp before", post11(b"Content-Length: \xa05\r\n"), fail(InvalidContentLength)),
        case("cl non-ascii digit", post11(b"Content-Length: \xd9\xa5\r\n"), fail(InvalidContentLength)),
        case("cl overflow u64", post11(b"Content-Length: 18446744073709551616\r\n"), fail(InvalidContentLength)),
        case("cl overflow huge", post11(b"Content-Length: 99999999999999999999999999\r\n"), fail(InvalidContentLength)),
        case("cl trailing comma", post11(b"Content-Length: 5,\r\n"), fail(InvalidContentLength)),
        case("cl leading comma", post11(b"Content-Length: ,5\r\n"), fail(InvalidContentLength)),
        case("cl list with bad member", post11(b"Content-Length: 5, x\r\n"), fail(InvalidContentLength)),
        case("cl semicolon", post11(b"Content-Length: 5;\r\n"), fail(InvalidContentLength)),
        case("cl bad on second line", post11(b"Content-Length: 5\r\nContent-Length: +5\r\n"), fail(InvalidContentLength)),
        // §8.6 lets a recipient fold a list of equal values; rwsgi refuses
        // lists and repeats outright, as Gunicorn does (two parsers could
        // read them differently).
        case("cl equal list", post11(b"Content-Length: 5, 5\r\n"), fail(InvalidContentLength)),
        case("cl equal list no space", post11(b"Content-Length: 5,5,5\r\n"), fail(InvalidContentLength)),
        case("cl equal on two lines", post11(b"Content-Length: 5\r\ncontent-length: 5\r\n"), fail(DuplicateField)),
        case("cl conflicting list", post11(b"Content-Length: 5, 6\r\n"), fail(InvalidContentLength)),
        case("cl conflicting lines", post11(b"Content-Length: 5\r\nContent-Length: 6\r\n"), fail(ConflictingContentLength)),
        case("cl conflicting zero", post11(b"Content-Length: 0\r\nContent-Length: 10\r\n"), fail(ConflictingContentLength)),
        case("cl conflicting leading zeros", post11(b"Content-Length: 5\r\ncontent-length: 06\r\n"), fail(ConflictingContentLength)),
        case("cl then te", post11(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), fail(ContentLengthWithTransferEncoding)),
        case("te then cl", post11(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), fail(ContentLengthWithTransferEncoding)),
        case("te with cl zero", post11(b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"), fail(ContentLengthWithTransferEncoding)),
        case("te gzip with cl", post11(b"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n"), fail(ContentLengthWithTransferEncoding)),
    ]
}

/// RFC 9112 §6.1: Transfer-Encoding; §6.3 (4): in a request, chunked
/// not final MUST be a 400; an unimplemented coding SHOULD be a 501.
fn transfer_encoding_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        // §6.1: TE in a 1.0 message means the framing is faulty.
        case("te on 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", fail(TransferEncodingOnHttp10)),
        case("te on 1.0 with cl", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            fail(TransferEncodingOnHttp10)),
        case("te gzip only", post11(b"Transfer-Encoding: gzip\r\n"), fail(ChunkedNotFinal)),
        case("te chunked then gzip", post11(b"Transfer-Encoding: chunked, gzip\r\n"), fail(ChunkedNotFinal)),
        case("te chunked then gzip on two lines", post11(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            fail(ChunkedNotFinal)),
        case("te chunked twice", post11(b"Transfer-Encoding: chunked, chunked\r\n"), fail(ChunkedNotFinal)),
        case("te chunked twice on two lines", post11(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            fail(ChunkedNotFinal)),
        case("te chunked twice any case", post11(b"Transfer-Encoding: Chunked, CHUNKED\r\n"), fail(ChunkedNotFinal)),
        // Valid codings rwsgi does not decode: 501.
        case("te gzip then chunked", post11(b"Transfer-Encoding: gzip, chunked\r\n"), fail(UnknownTransferCoding)),
        case("te deflate then chunked", post11(b"Transfer-Encoding: deflate, chunked\r\n"), fail(UnknownTransferCoding)),
        case("te unknown then chunked", post11(b"Transfer-Encoding: foo, chunked\r\n"), fail(UnknownTransferCoding)),
        case("te identity then chunked", post11(b"Transfer-Encoding: identity, chunked\r\n"), fail(UnknownTransferCoding)),
        case("te unknown on its own line", post11(b"Transfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n"),
            fail(UnknownTransferCoding)),
        case("te chunked with parameter", post11(b"Transfer-Encoding: x;q=1, chunked\r\n"), fail(UnknownTransferCoding)),
    ]
}

/// RFC 9110 §10.1.1: the only expectation is 100-continue; anything else
/// MAY get a 417.
fn expect_cases() -> Vec<Case> {
    use HttpError::*;
    vec![
        case("expect other token", post11(b"Expect: foo\r\n"), fail(UnsupportedExpectation)),
        case("expect 200-ok", post11(b"Expect: 200-ok\r\n"), fail(UnsupportedExpectation)),
        case("expect 100-continue plus another", post11(b"Expect: 100-continue, foo\r\n"), fail(UnsupportedExpectation)),
        case("expect 100-continue with parameter", post11(b"Expect: 100-continue;a=b\r\n"), fail(UnsupportedExpectation)),
        case("expect 100-continue misspelt", post11(b"Expect: 100-continu\r\n"), fail(UnsupportedExpectation)),
        case("expect other on 1.0", b"POST / HTTP/1.0\r\nExpect: foo\r\n\r\n", fail(UnsupportedExpectation)),
    ]
}

#[test]
fn invalid_line_ends() {
    run_table(&line_end_cases());
}

#[test]
fn invalid_request_lines() {
    run_table(&request_line_cases());
}

#[test]
fn invalid_fields() {
    run_table(&field_cases());
}

#[test]
fn host_rules() {
    run_table(&host_cases());
}

#[test]
fn content_length_rules() {
    run_table(&content_length_cases());
}

#[test]
fn transfer_encoding_rules() {
    run_table(&transfer_encoding_cases());
}

#[test]
fn expect_rules() {
    run_table(&expect_cases());
}

// ---------------------------------------------------------------------------
// Limits (Gunicorn's limit_request_line / _fields / _field_size; RFC 9110
// §15.5.15 414, RFC 6585 §5 431)
// ---------------------------------------------------------------------------

fn limit_cases() -> Vec<Case> {
    use HttpError::*;
    // A request line of exactly `len` bytes.
    let line = |len: usize| format!("GET /{} HTTP/1.1", "a".repeat(len - 14));
    let with_host = |l: String| format!("{l}\r\nHost: h\r\n\r\n");
    let x_field = |value_len: usize| format!("X: {}\r\n", "v".repeat(value_len));
    let fields = |n: usize| (0..n).map(|i| format!("F{i}: {i}\r\n")).collect::<String>();
    // SMALL: request line 31, four fields of 24 bytes (CRLF included):
    // 131 bytes, one under max_head_len.
    let full_small = format!(
        "{}\r\nHost: {}\r\n{}{}{}\r\n",
        line(31),
        "h".repeat(16),
        x_field(19),
        x_field(19),
        x_field(19)
    );
    assert_eq!(full_small.len(), max_head_len(&SMALL) - 1);
    vec![
        // Request line (414).
        case("line one under default limit", with_host(line(4093)), ok("GET", &line(4093)[4..4093 - 9], V11)),
        case("line over default limit", with_host(line(4095)), fail(RequestLineTooLong)),
        case("line over default limit, no crlf yet", line(4095), fail(RequestLineTooLong)),
        case("line far over default limit, no crlf yet", "GET /".to_string() + &"a".repeat(10_000), fail(RequestLineTooLong)),
        case("line one under small limit", with_host(line(31)), ok("GET", &line(31)[4..31 - 9], V11)).with(SMALL),
        case("line over small limit", with_host(line(33)), fail(RequestLineTooLong)).with(SMALL),
        case("line over small limit, no crlf yet", line(33), fail(RequestLineTooLong)).with(SMALL),
        case("line at small limit, no crlf yet", line(32), Want::Partial).with(SMALL),
        case("long method over small limit", format!("{} / HTTP/1.1", "M".repeat(40)), fail(RequestLineTooLong)).with(SMALL),
        case("unlimited line", with_host(line(10_000)), ok("GET", &line(10_000)[4..10_000 - 9], V11)).with(UNLIMITED),
        // Field count (431).
        case("fields at default limit", get11(fields(99).as_bytes()), ok("GET", "/", V11)),
        case("fields one over default limit", get11(fields(100).as_bytes()), fail(TooManyHeaders)),
        case("fields far over default limit", get11(fields(300).as_bytes()), fail(TooManyHeaders)),
        case("fields at small limit", get11(fields(3).as_bytes()), ok("GET", "/", V11)).with(SMALL),
        case("fields one over small limit", get11(fields(4).as_bytes()), fail(TooManyHeaders)).with(SMALL),
        case("fields two over small limit", get11(fields(5).as_bytes()), fail(TooManyHeaders)).with(SMALL),
        case("fields over small limit, head not finished", format!("GET / HTTP/1.1\r\nHost: h\r\n{}", fields(6)),
            fail(TooManyHeaders)).with(SMALL),
        // Field size (431), as Gunicorn counts it: name + ": " + value +
        // CRLF.
        case("field at default size", get11(x_field(8185).as_bytes()), ok("GET", "/", V11)),
        case("field over default size", get11(x_field(8186).as_bytes()), fail(HeaderTooLarge)),
        case("field at small size", get11(x_field(19).as_bytes()), ok("GET", "/", V11)).with(SMALL),
        case("field over small size", get11(x_field(20).as_bytes()), fail(HeaderTooLarge)).with(SMALL),
        // Folded (where permitted): each line with its CRLF, summed.
        case("folded field at small size", get11(b"X: vvvvvvvvv\r\n vvvvvvv\r\n"), ok("GET", "/", V11))
            .with(RequestLimits { permit_obsolete_folding: true, ..SMALL }),
        case("folded field over small size", get11(b"X: vvvvvvvvv\r\n vvvvvvvv\r\n"), fail(HeaderTooLarge))
            .with(RequestLimits { permit_obsolete_folding: true, ..SMALL }),
        case("host over small size", format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(19)), fail(HeaderTooLarge)).with(SMALL),
        case("long name over small size", get11(format!("{}: v\r\n", "N".repeat(30)).as_bytes()), fail(HeaderTooLarge)).with(SMALL),
        case("unlimited field size", get11(x_field(100_000).as_bytes()), ok("GET", "/", V11)).with(UNLIMITED),
        case("head one under max_head_len", full_small.as_bytes(), ok("GET", &line(31)[4..31 - 9], V11)).with(SMALL),
        // A head that outgrows every limit without ending (431 at once).
        case("one field grows past max_head_len", format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "v".repeat(200)),
            fail(HeaderTooLarge)).with(SMALL),
        case("one field grows past default max_head_len",
            format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "v".repeat(max_head_len(&DEFAULT) + 10)),
            fail(HeaderTooLarge)),
        // Many short lines: the count or the size trips first; both 431.
        case("short lines grow past max_head_len", format!("GET / HTTP/1.1\r\n{}", "A: 1\r\n".repeat(40)), status(431))
            .with(SMALL),
        // Every field within field_size (24, CRLF included), four whole
        // lines and a fifth one under way: 16 + 4 * 24 + 20 = 132 =
        // max_head_len(SMALL).
        case("head exactly max_head_len, not ended",
            format!("GET / HTTP/1.1\r\n{}X: {}", format!("A: {}\r\n", "v".repeat(19)).repeat(4), "v".repeat(17)),
            Want::Partial).with(SMALL),
        // An unfinished field line already longer than field_size is
        // refused without waiting for its end.
        case("unfinished field over field size", format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(30)),
            status(431)).with(SMALL),
    ]
}

#[test]
fn limits() {
    run_table(&limit_cases());
}

// ---------------------------------------------------------------------------
// Where the parser disagrees with the RFCs (or with itself across reads).
// These rows state what should happen; see the report for each.
// ---------------------------------------------------------------------------

fn smuggling_and_split_cases() -> Vec<Case> {
    use HttpError::*;
    let line = |len: usize| format!("GET /{} HTTP/1.1", "a".repeat(len - 14));
    vec![
        // RFC 9112 §2.2: leading empty lines may be skipped, but the head
        // after them is still a head: bare LF is refused like anywhere
        // else (httparse alone would accept LF-only lines).
        case("bare lf after leading empty lines", b"\r\n\r\nGET / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n",
            fail(BareLineFeed)),
        case("bare lf after request line after leading empty lines", b"\r\n\r\nGET / HTTP/1.1\nHost: h\r\n\r\n",
            fail(BareLineFeed)),
        // The request-line limit applies after the skipped empty lines.
        case("leading crlf hides long request line", format!("\r\n{}\r\nHost: h\r\n\r\n", line(60)),
            fail(RequestLineTooLong)).with(SMALL),
        // A request line exactly at the limit is valid, also when a read
        // ends between its CR and LF.
        case("line at small limit", format!("{}\r\nHost: h\r\n\r\n", line(32)), ok("GET", &line(32)[4..32 - 9], V11))
            .with(SMALL),
        case("line at default limit", format!("{}\r\nHost: h\r\n\r\n", line(4094)), ok("GET", &line(4094)[4..4094 - 9], V11)),
        // field_size counts the field line as sent, OWS included, so the
        // answer does not depend on how the head was split.
        case("field padded with ows past field size", get11(format!("X:{}v\r\n", " ".repeat(30)).as_bytes()),
            fail(HeaderTooLarge)).with(SMALL),
        // RFC 9112 §3: an invalid request line is a 400; 505 (RFC 9110
        // §15.6.6) is for an unsupported major version, not for bad syntax.
        // A third SP is a malformed line even when the last word is a
        // well-formed version.
        case("space inside target", b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        case("two sp before version", b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", status(400)),
        // RFC 9112 §6.3 (4): Transfer-Encoding present in a request and
        // chunked not final: MUST 400 and close. An empty field value
        // (or only empty list elements) is still a Transfer-Encoding
        // field, not an absent one.
        case("te empty", post11(b"Transfer-Encoding:\r\n"), fail(ChunkedNotFinal)),
        case("te only commas", post11(b"Transfer-Encoding: , ,\r\n"), fail(ChunkedNotFinal)),
        // RFC 9112 §6.3 (3): TE and CL together; here TE is empty.
        case("te empty with cl", post11(b"Transfer-Encoding: ,\r\nContent-Length: 5\r\n"), status(400)),
        // RFC 9112 §6.1: TE in a 1.0 request, whatever its value.
        case("te empty on 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\n", status(400)),
        // §6.3 (4) again: "chunked" is not the final coding, so 400 (a
        // MUST) wins over 501 for an unknown coding (§6.1, a SHOULD).
        case("te unknown only", post11(b"Transfer-Encoding: foo\r\n"), fail(ChunkedNotFinal)),
        case("te nbsp before chunked", post11(b"Transfer-Encoding: \xa0chunked\r\n"), fail(ChunkedNotFinal)),
        case("te chunked with nbsp after", post11(b"Transfer-Encoding: chunked\xa0\r\n"), fail(ChunkedNotFinal)),
        case("te chunked with parameter alone", post11(b"Transfer-Encoding: chunked;q=1\r\n"), fail(ChunkedNotFinal)),
        // RFC 9112 §3.2: a Host field with an invalid value MUST get a 400.
        // Host = uri-host [ ":" port ] (RFC 9110 §7.2).
        case("host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status(400)),
        case("host with slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status(400)),
        case("host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", status(400)),
        case("host with bad port", b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", status(400)),
        // RFC 9112 §3.2.2 (a server MUST accept absolute-form) and RFC 3986
        // §3.1 (the scheme is case-insensitive).
        case("absolute-form uppercase scheme", b"GET HTTP://h/a HTTP/1.1\r\nHost: h\r\n\r\n", ok("GET", "HTTP://h/a", V11)),
        // RFC 9112 §5.2: obs-fold is refused with 400, and so is
        // whitespace before the first field line (§2.2); the error does
        // not depend on where a read ends.
        case("obs-fold with sp", get11(b"X: a\r\n b\r\n"), fail(ObsoleteLineFolding)),
        case("obs-fold with htab", get11(b"X: a\r\n\tb\r\n"), fail(ObsoleteLineFolding)),
        case("obs-fold of host", b"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n", fail(ObsoleteLineFolding)),
        case("whitespace before first field", b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", fail(ObsoleteLineFolding)),
        case("htab before first field", b"GET / HTTP/1.1\r\n\tHost: h\r\n\r\n", fail(ObsoleteLineFolding)),
        // RFC 9112 §5.2: a recipient that accepts obs-fold replaces each
        // fold with SP before interpreting the value (--permit-obsolete-folding).
        case("obs-fold permitted, sp", get11(b"X: a\r\n b\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"a b")])).with(FOLD),
        case("obs-fold permitted, several lines", get11(b"X: a \r\n\t \tb\r\n  c\r\nY: d\r\n"),
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"a b c"), ("Y", b"d")])).with(FOLD),
        case_rest("obs-fold permitted, body follows", post11(b"Content-Length:\r\n 3\r\n"), b"abc",
            ok("POST", "/", V11).framing(Length(3))).with(FOLD),
        case("obs-fold permitted into an invalid host", b"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n", fail(InvalidHost)).with(FOLD),
        case("obs-fold permitted, still not before the first field", b"GET / HTTP/1.1\r\n Host: h\r\nX: a\r\n b\r\n\r\n",
            fail(ObsoleteLineFolding)).with(FOLD),
        case("obs-fold permitted, folded line over the field limit", get11(b"X: 0123456789\r\n 0123456789abcdef\r\n"),
            fail(HeaderTooLarge)).with(FOLD_SMALL),
        case("obs-fold permitted, head over the limit as received",
            cat(&[b"GET / HTTP/1.1\r\nHost: h\r\nX: a", "\r\n ".repeat(37).as_bytes(), b"b\r\n\r\n"]),
            fail(HeaderTooLarge)).with(RequestLimits { permit_obsolete_folding: true, ..SMALL }),
        case("obs-fold permitted, control byte in continuation", get11(b"X: a\r\n b\x01\r\n"), status(400)).with(FOLD),
        // --strip-header-spaces: Gunicorn's deprecated leniency, spaces and
        // tabs between a name and its colon dropped.
        case("spaces before colon stripped", get11(b"X : v\r\n"), ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"v")])).with(STRIP),
        case("spaces and tabs before the host's colon stripped", b"GET / HTTP/1.1\r\nHost \t : h\r\n\r\n",
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h")])).with(STRIP),
        case("stripping leaves a space inside a name", get11(b"X Y : v\r\n"), fail(InvalidHeaderName)).with(STRIP),
        case("stripping does not permit obs-fold", get11(b"X : a\r\n b\r\n"), fail(ObsoleteLineFolding)).with(STRIP),
        case("stripping and obs-fold together", get11(b"X : a\r\n b\r\n"),
            ok("GET", "/", V11).hdrs(hdrs![("Host", b"h"), ("X", b"a b")])).with(RequestLimits { strip_header_spaces: true, ..FOLD }),
        case_rest("stripping, body follows", post11(b"Content-Length : 3\r\n"), b"abc",
            ok("POST", "/", V11).framing(Length(3))).with(STRIP),
        // RFC 9112 §3.2.3: CONNECT takes authority-form only.
        case("connect with absolute-form", b"CONNECT http://h:80/ HTTP/1.1\r\nHost: h\r\n\r\n", fail(InvalidTarget)),
    ]
}

#[test]
fn smuggling_and_split_regressions() {
    run_table(&smuggling_and_split_cases());
}

#[test]
fn case_count() {
    let n = valid_cases().len()
        + line_end_cases().len()
        + request_line_cases().len()
        + field_cases().len()
        + host_cases().len()
        + content_length_cases().len()
        + transfer_encoding_cases().len()
        + expect_cases().len()
        + limit_cases().len()
        + smuggling_and_split_cases().len();
    assert!(n >= 150, "only {n} request cases");
}

// ---------------------------------------------------------------------------
// Request accessors
// ---------------------------------------------------------------------------

fn parse_ok(input: &[u8]) -> Request {
    match parse_request(input, &DEFAULT) {
        Ok(Parse::Complete(r)) => r,
        other => panic!("{:?}: {}", String::from_utf8_lossy(input), show(&other)),
    }
}

#[test]
fn header_lookup_is_first_match_case_insensitive() {
    let r = parse_ok(&get11(b"X-A: 1\r\nx-a: 2\r\n"));
    assert_eq!(r.header("x-A"), Some(&b"1"[..]));
    assert_eq!(r.header("HOST"), Some(&b"h"[..]));
    assert_eq!(r.header("X-B"), None);
}

#[test]
fn path_and_query_table() {
    // RFC 9112 §3.2.1 origin-form, §3.2.2 absolute-form.
    let rows: &[(&[u8], &str, &str)] = &[
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/", ""),
        (b"GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n", "/a/b", ""),
        (b"GET /a?b=c&d HTTP/1.1\r\nHost: h\r\n\r\n", "/a", "b=c&d"),
        (b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", "/a", ""),
        (b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n", "/a", "b?c"),
        (b"GET /a%3Fb HTTP/1.1\r\nHost: h\r\n\r\n", "/a%3Fb", ""),
        (b"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n", "/a", ""),
        (b"GET /a?q#f HTTP/1.1\r\nHost: h\r\n\r\n", "/a", "q"),
        (b"GET http://h/a?q HTTP/1.1\r\nHost: h\r\n\r\n", "/a", "q"),
        (b"GET https://h:1/a/b HTTP/1.1\r\nHost: h\r\n\r\n", "/a/b", ""),
        (b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", "/", ""),
        (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", ""),
    ];
    for (input, path, query) in rows {
        let r = parse_ok(input);
        assert_eq!(r.path_and_query(), (*path, *query), "{}", r.target);
    }
}

/// RFC 3986 §3: an absolute URI may have an empty path and a query
/// (`http://h?q`); the query must survive.
#[test]
fn path_and_query_absolute_form_without_path_keeps_query() {
    let r = parse_ok(b"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.path_and_query(), ("/", "q=1"));
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

#[test]
fn trim_ows_table() {
    let rows: &[(&[u8], &[u8])] = &[
        (b"", b""),
        (b" ", b""),
        (b" \t \t", b""),
        (b"a", b"a"),
        (b" a ", b"a"),
        (b"\ta\t", b"a"),
        (b" a b ", b"a b"),
        (b"\xa0a\xa0", b"\xa0a\xa0"),
        (b"\x0ba\x0c", b"\x0ba\x0c"),
        (b"\r a \n", b"\r a \n"),
    ];
    for (input, want) in rows {
        assert_eq!(trim_ows(input), *want, "{input:?}");
    }
}

#[test]
fn is_token_table() {
    for good in [&b"GET"[..], b"a", b"X-Y_z.1", b"!#$%&'*+-.^_`|~", b"0"] {
        assert!(is_token(good), "{good:?}");
    }
    for bad in [&b""[..], b" ", b"a b", b"a:b", b"(", b")", b"<", b">", b"@", b",", b";", b"\\", b"\"", b"/", b"[", b"]", b"?", b"=", b"{", b"}", b"\x00", b"\x7f", b"\xe9", b"\t"] {
        assert!(!is_token(bad), "{bad:?}");
    }
}

#[test]
fn is_field_value_table() {
    for good in [&b""[..], b"a b", b"\ta\t", b"\x80\xff", b"~!\"", b" "] {
        assert!(is_field_value(good), "{good:?}");
    }
    for bad in [&b"\x00"[..], b"a\rb", b"a\nb", b"\x0b", b"\x1f", b"\x7f", b"\x01"] {
        assert!(!is_field_value(bad), "{bad:?}");
    }
}

#[test]
fn max_head_len_counts_every_limit() {
    assert_eq!(max_head_len(&SMALL), 132);
    assert_eq!(max_head_len(&DEFAULT), 4096 + 100 * 8190 + 2);
    // 0 = unlimited is taken as 64 KiB for the bound.
    assert_eq!(max_head_len(&UNLIMITED), (65536 + 2) + 100 * 65536 + 2);
}

/// A configured limit near usize::MAX (limit_request_line and
/// limit_request_field_size have no upper bound in the settings) must not
/// overflow: `line + 2` and `field + 2` panic in debug builds and wrap to a
/// tiny bound in release builds, so every head read in pieces gets a 431.
#[test]
fn max_head_len_saturates_on_huge_limits() {
    let huge = RequestLimits { request_line: usize::MAX - 1, fields: usize::MAX, field_size: usize::MAX - 2, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false, strip_header_spaces: false };
    assert_eq!(max_head_len(&huge), usize::MAX);
}

#[test]
fn error_status_table() {
    use HttpError::*;
    let rows = [
        (Malformed, 400),
        (BareLineFeed, 400),
        (InvalidMethod, 400),
        (InvalidTarget, 400),
        (UnsupportedVersion, 505),
        (InvalidHeaderName, 400),
        (InvalidHeaderValue, 400),
        (ObsoleteLineFolding, 400),
        (MissingHost, 400),
        (DuplicateField, 400),
        (InvalidContentLength, 400),
        (ConflictingContentLength, 400),
        (ContentLengthWithTransferEncoding, 400),
        (TransferEncodingOnHttp10, 400),
        (ChunkedNotFinal, 400),
        (UnknownTransferCoding, 501),
        (UnsupportedExpectation, 417),
        (RequestLineTooLong, 414),
        (TooManyHeaders, 431),
        (HeaderTooLarge, 431),
        (InvalidChunk, 400),
        (ChunkTooLarge, 413),
        (ContentTooLarge, 413),
        (TruncatedBody, 400),
        (Timeout, 408),
    ];
    for (e, code) in rows {
        assert_eq!(e.status().0, code, "{e:?}");
        assert!(!e.status().1.is_empty() && !e.describe().is_empty(), "{e:?}");
    }
}

// ---------------------------------------------------------------------------
// Chunked decoder (RFC 9112 §7.1)
// ---------------------------------------------------------------------------

/// Bytes after the body: the next pipelined request, never consumed.
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";

/// Valid chunked bodies and their data.
fn chunked_valid() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    // MAX_EXTENSION_LEN counts the bytes after the first ';'.
    let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(4096));
    let big = vec![b'z'; 300];
    vec![
        // §7.1: last-chunk only.
        ("empty body", b"0\r\n\r\n".to_vec(), b"".to_vec()),
        ("single chunk", b"5\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("multiple chunks", b"3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n".to_vec(), b"abcdef".to_vec()),
        ("uppercase hex", b"A\r\n0123456789\r\n0\r\n\r\n".to_vec(), b"0123456789".to_vec()),
        ("lowercase hex", b"a\r\n0123456789\r\n0\r\n\r\n".to_vec(), b"0123456789".to_vec()),
        ("mixed-case two digits", cat(&[b"1A\r\n", &[b'q'; 26], b"\r\n1b\r\n", &[b'r'; 27], b"\r\n0\r\n\r\n"]),
            cat(&[&[b'q'; 26], &[b'r'; 27]])),
        ("three-digit size", cat(&[b"12c\r\n", &big, b"\r\n0\r\n\r\n"]), big.clone()),
        ("leading zeros", b"005\r\nhello\r\n0000\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("fifteen digits", b"000000000000005\r\nhello\r\n000000000000000\r\n\r\n".to_vec(), b"hello".to_vec()),
        // §7.1.1: chunk extensions.
        ("extension with value", b"5;a=b\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("extension without value", b"5;a\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("extension quoted value", b"5;a=\"b c;d=e\\\"\"\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("several extensions", b"5;a=b;c=d;e\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("bws before semicolon", b"5 ;a=b\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("htab and sp before semicolon", b"5\t ;a=b\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("bws inside extension", b"5; a = b\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("extension on last chunk", b"5\r\nhello\r\n0;end=1\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("extension with obs-text", b"5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("extension at the length limit", long_ext.into_bytes(), b"x".to_vec()),
        // §7.1.2: trailer section.
        ("one trailer", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n".to_vec(), b"hello".to_vec()),
        ("two trailers", b"0\r\nA: 1\r\nB: 2 3\r\n\r\n".to_vec(), b"".to_vec()),
        ("trailer with obs-text", b"0\r\nA: \xe9\r\n\r\n".to_vec(), b"".to_vec()),
        ("trailer with empty value", b"0\r\nA:\r\n\r\n".to_vec(), b"".to_vec()),
        ("trailer with htab in value", b"0\r\nServer-Timing: a;\tdur=1\r\n\r\n".to_vec(), b"".to_vec()),
        // RFC 9110 §6.5.1 keeps these out of trailers, but they neither
        // frame, route nor authenticate: read and dropped, as Gunicorn.
        ("content-type trailer", b"0\r\nContent-Type: text/plain\r\n\r\n".to_vec(), b"".to_vec()),
        ("cache-control trailer", b"0\r\nCache-Control: no-cache\r\n\r\n".to_vec(), b"".to_vec()),
        // Data is opaque: CR, LF, NUL and what looks like framing.
        ("data with crlf inside", b"7\r\n0\r\n\r\nab\r\n0\r\n\r\n".to_vec(), b"0\r\n\r\nab".to_vec()),
        ("binary data", b"4\r\n\x00\xff\r\n\r\n0\r\n\r\n".to_vec(), b"\x00\xff\r\n".to_vec()),
    ]
}

/// Invalid chunked bodies and the error.
fn chunked_invalid() -> Vec<(&'static str, Vec<u8>, HttpError)> {
    use HttpError::*;
    let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(4097));
    vec![
        ("missing size", b"\r\nhello\r\n0\r\n\r\n".to_vec(), InvalidChunk),
        ("extension without size", b";a=b\r\n".to_vec(), InvalidChunk),
        ("sp before size", b" 5\r\nhello\r\n".to_vec(), InvalidChunk),
        ("non-hex size", b"g\r\n".to_vec(), InvalidChunk),
        ("non-hex after digits", b"5g\r\nhello\r\n".to_vec(), InvalidChunk),
        ("0x prefix", b"0x5\r\nhello\r\n".to_vec(), InvalidChunk),
        ("signed size", b"+5\r\nhello\r\n".to_vec(), InvalidChunk),
        ("negative size", b"-5\r\nhello\r\n".to_vec(), InvalidChunk),
        ("size then junk after bws", b"5 x\r\nhello\r\n".to_vec(), InvalidChunk),
        ("sixteen digits", b"0000000000000001\r\nx\r\n0\r\n\r\n".to_vec(), ChunkTooLarge),
        ("sixteen f", b"ffffffffffffffff\r\n".to_vec(), ChunkTooLarge),
        ("data too long", b"5\r\nhelloX\r\n0\r\n\r\n".to_vec(), InvalidChunk),
        ("missing crlf after data", b"5\r\nhello0\r\n\r\n".to_vec(), InvalidChunk),
        ("cr then junk after data", b"5\r\nhello\rX\r\n0\r\n\r\n".to_vec(), InvalidChunk),
        ("lf-only size line", b"5\nhello\r\n0\r\n\r\n".to_vec(), InvalidChunk),
        ("lf-only after data", b"5\r\nhello\n0\r\n\r\n".to_vec(), InvalidChunk),
        ("lf-only last chunk", b"0\n\r\n".to_vec(), InvalidChunk),
        ("lf-only end of trailers", b"0\r\n\n".to_vec(), InvalidChunk),
        ("lf-only trailer line", b"0\r\nA: 1\n\r\n".to_vec(), InvalidChunk),
        ("bare cr in size line", b"5\rX\nhello\r\n".to_vec(), InvalidChunk),
        ("bare cr in extension", b"5;a\rb\r\nhello\r\n".to_vec(), InvalidChunk),
        ("lf in extension", b"5;a\nb\r\nhello\r\n".to_vec(), InvalidChunk),
        ("control byte in extension", b"5;a=\x01\r\nhello\r\n".to_vec(), InvalidChunk),
        ("nul in extension", b"5;a=\x00\r\nhello\r\n".to_vec(), InvalidChunk),
        ("bare cr in trailer", b"0\r\nA: 1\rB\r\n\r\n".to_vec(), InvalidChunk),
        ("bare cr as end of trailers", b"0\r\n\rX".to_vec(), InvalidChunk),
        ("trailer starting with sp", b"0\r\n A: 1\r\n\r\n".to_vec(), InvalidChunk),
        ("trailer starting with htab", b"0\r\n\tA: 1\r\n\r\n".to_vec(), InvalidChunk),
        ("trailer folded", b"0\r\nA: 1\r\n 2\r\n\r\n".to_vec(), InvalidChunk),
        ("trailer starting with colon", b"0\r\n: 1\r\n\r\n".to_vec(), InvalidChunk),
        ("overlong extension", long_ext.into_bytes(), InvalidChunk),
        // §7.1.2 + RFC 9110 §6.5.1: trailers follow the field rules, and
        // fields that frame, route or authenticate are not allowed there.
        ("trailer without colon", b"0\r\nA 1\r\n\r\n".to_vec(), InvalidTrailer),
        ("trailer with space before colon", b"0\r\nA : 1\r\n\r\n".to_vec(), InvalidTrailer),
        ("trailer name with slash", b"0\r\nA/B: 1\r\n\r\n".to_vec(), InvalidTrailer),
        ("trailer value with nul", b"0\r\nA: 1\x002\r\n\r\n".to_vec(), InvalidTrailer),
        ("trailer value with del", b"0\r\nA: 1\x7f\r\n\r\n".to_vec(), InvalidTrailer),
        ("content-length trailer", b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n".to_vec(), ForbiddenTrailer),
        ("transfer-encoding trailer", b"0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), ForbiddenTrailer),
        ("host trailer", b"0\r\nhost: evil\r\n\r\n".to_vec(), ForbiddenTrailer),
        ("authorization trailer", b"0\r\nX-A: 1\r\nAuthorization: Basic x\r\n\r\n".to_vec(), ForbiddenTrailer),
        ("trailer trailer", b"0\r\nTRAILER: x\r\n\r\n".to_vec(), ForbiddenTrailer),

        ("overlong trailer section", cat(&[b"0\r\n", "A: 1234567890\r\n".repeat(1400).as_bytes(), b"\r\n"]), HeaderTooLarge),
    ]
}

/// Feed `pieces` one after another the way a connection does: whatever a
/// call leaves unconsumed is kept and offered again with the next piece.
fn feed(pieces: &[&[u8]], max_out: usize) -> (Result<usize, HttpError>, Vec<u8>, ChunkedDecoder) {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        pending.extend_from_slice(piece);
        loop {
            let before = out.len();
            match d.decode(&pending, &mut out, max_out) {
                Ok(n) => {
                    assert!(out.len() - before <= max_out, "max_out {max_out} exceeded");
                    consumed += n;
                    pending.drain(..n);
                    if d.is_done() || pending.is_empty() || (n == 0 && out.len() == before) {
                        break;
                    }
                }
                Err(e) => return (Err(e), out, d),
            }
        }
    }
    (Ok(consumed), out, d)
}

#[test]
fn chunked_valid_bodies() {
    for (name, body, data) in chunked_valid() {
        let input = cat(&[&body, NEXT]);
        let n = body.len();

        // Whole, with the next request behind it.
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&input, &mut out, usize::MAX), Ok(n), "{name}: whole");
        assert!(d.is_done(), "{name}: whole not done");
        assert_eq!(out, data, "{name}: whole data");
        assert_eq!(d.decode(&input[n..], &mut out, usize::MAX), Ok(0), "{name}: consumed after done");

        // Byte by byte: done exactly at the last byte of the body.
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            assert!(!d.is_done() || i >= n, "{name}: done early at {i}");
            let want = usize::from(i < n);
            assert_eq!(d.decode(std::slice::from_ref(b), &mut out, usize::MAX), Ok(want), "{name}: byte {i}");
        }
        assert!(d.is_done(), "{name}: byte by byte not done");
        assert_eq!(out, data, "{name}: byte by byte data");

        // Split at every offset into two decode calls.
        for k in 0..=input.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let c1 = d.decode(&input[..k], &mut out, usize::MAX).unwrap_or_else(|e| panic!("{name}: split {k}: {e:?}"));
            assert_eq!(c1, k.min(n), "{name}: split {k}: first call consumed");
            // A truncated body is simply not done yet.
            assert_eq!(d.is_done(), k >= n, "{name}: split {k}: done after first call");
            let c2 = d.decode(&input[c1..], &mut out, usize::MAX).unwrap_or_else(|e| panic!("{name}: split {k}: {e:?}"));
            assert_eq!(c1 + c2, n, "{name}: split {k}: total consumed");
            assert!(d.is_done(), "{name}: split {k}: not done");
            assert_eq!(out, data, "{name}: split {k}: data");
        }

        // Read-loop feeding in pieces of several sizes.
        for step in [1, 2, 3, 5, 64] {
            let pieces: Vec<&[u8]> = input.chunks(step).collect();
            let (r, out, d) = feed(&pieces, usize::MAX);
            assert_eq!(r, Ok(n), "{name}: pieces of {step}");
            assert!(d.is_done(), "{name}: pieces of {step} not done");
            assert_eq!(out, data, "{name}: pieces of {step} data");
        }

        // max_out limits each call; the data comes out the same.
        for max_out in [1, 2, 3] {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut calls = 0;
            while !d.is_done() {
                calls += 1;
                assert!(calls <= input.len() + 1, "{name}: max_out {max_out}: no progress");
                let before = out.len();
                let c = d.decode(&input[pos..], &mut out, max_out).unwrap();
                assert!(out.len() - before <= max_out, "{name}: max_out {max_out} exceeded");
                assert!(c > 0 || out.len() > before, "{name}: max_out {max_out}: stalled at {pos}");
                pos += c;
            }
            assert_eq!(pos, n, "{name}: max_out {max_out}: consumed");
            assert_eq!(out, data, "{name}: max_out {max_out}: data");
        }
    }
}

#[test]
fn chunked_truncated_bodies_are_never_done() {
    for (name, body, data) in chunked_valid() {
        for k in 0..body.len() {
            let (r, out, d) = feed(&[&body[..k]], usize::MAX);
            assert_eq!(r, Ok(k), "{name}: prefix {k}");
            assert!(!d.is_done(), "{name}: prefix {k} done");
            assert!(data.starts_with(&out), "{name}: prefix {k} data");
        }
    }
}

#[test]
fn chunked_invalid_bodies() {
    for (name, body, err) in chunked_invalid() {
        // Whole.
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&body, &mut out, usize::MAX), Err(err), "{name}: whole");
        // Byte by byte and in pieces: the same error, never done first.
        for step in [1, 2, 7] {
            let pieces: Vec<&[u8]> = body.chunks(step).collect();
            let (r, _, d) = feed(&pieces, usize::MAX);
            assert_eq!(r, Err(err), "{name}: pieces of {step}");
            assert!(!d.is_done(), "{name}: pieces of {step} done");
        }
        // Split at every offset into two calls (a stride for big bodies).
        let stride = if body.len() > 5_000 { 61 } else { 1 };
        for k in (0..=body.len()).step_by(stride).chain([body.len()]) {
            let (r, _, _) = feed(&[&body[..k], &body[k..]], usize::MAX);
            assert_eq!(r, Err(err), "{name}: split {k}");
        }
        // One byte of output per call.
        let (r, _, _) = feed(&[&body], 1);
        assert_eq!(r, Err(err), "{name}: max_out 1");
    }
}

/// The encoder's framing decodes back to the data.
#[test]
fn chunk_encoder_round_trip() {
    let parts: [&[u8]; 4] = [b"a", b"hello world", &[b'x'; 255], &[0u8; 4096]];
    let mut wire = Vec::new();
    for p in parts {
        wire.extend_from_slice(chunk_header(p.len()).as_bytes());
        wire.extend_from_slice(p);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(LAST_CHUNK);
    assert_eq!(chunk_header(255), "ff\r\n");
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    assert_eq!(d.decode(&wire, &mut out, usize::MAX), Ok(wire.len()));
    assert!(d.is_done());
    assert_eq!(out, parts.concat());
}

/// RFC 9110 §7.6.1: hop-by-hop fields.
#[test]
fn hop_by_hop_table() {
    for name in ["Connection", "keep-alive", "Proxy-Authenticate", "PROXY-AUTHORIZATION", "TE", "Trailer", "Transfer-Encoding", "upgrade"] {
        assert!(is_hop_by_hop(name), "{name}");
    }
    for name in ["Content-Length", "Content-Type", "Host", "X-Connection", "Trailers", ""] {
        assert!(!is_hop_by_hop(name), "{name}");
    }
}

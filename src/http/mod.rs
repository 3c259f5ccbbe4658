//! HTTP/1.x on bytes: the request head parser, body framing, the chunked
//! decoder, response framing and the error → status table.
//!
//! Everything here is pure: it works on `&[u8]` and returns `Complete`,
//! `Partial` or an [`HttpError`]; no socket, no Python. Incomplete input is
//! never an error. Strict by default: where RFC 9112 lets a server choose,
//! rwsgi refuses anything two parsers could read differently (request
//! smuggling).

pub mod body;
pub mod chunked;
pub mod response;

use crate::config::RequestLimits;

pub use chunked::ChunkedDecoder;

/// HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// The version as a request line and `SERVER_PROTOCOL` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// Chunks until the last, empty one (`Transfer-Encoding: chunked`).
    Chunked,
}

/// One request header, as received (name case kept, value trimmed of
/// SP/HTAB only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name, in the case the client wrote it.
    pub name: String,
    /// The field value, bytes as received.
    pub value: Vec<u8>,
}

/// A parsed and checked request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, a token (`GET`).
    pub method: String,
    /// The request target exactly as sent (`RAW_URI`).
    pub target: String,
    /// The request's HTTP version.
    pub version: Version,
    /// The header fields, in the order received.
    pub headers: Vec<Header>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// The client allows the connection to stay open after this request.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Bytes of the buffer the head took, CRLFCRLF included (for uwsgi,
    /// the packet header and variables).
    pub head_len: usize,
    /// CGI variables a uwsgi front end sent besides the request line and
    /// headers (`REMOTE_ADDR`, `PATH_INFO`, `HTTPS`, ...); they go into the
    /// environ as given. Empty for HTTP.
    pub params: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
    }

    /// The last uwsgi variable named `name`.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// Path and query of the target (`/a/b`, `q=1`); absolute-form targets
    /// lose their scheme and authority.
    pub fn path_and_query(&self) -> (&str, &str) {
        let mut t = self.target.as_str();
        let mut absolute = false;
        if let Some(rest) = absolute_form_rest(t) {
            absolute = true;
            t = rest.find(['/', '?', '#']).map_or("", |i| &rest[i..]);
        }
        let t = t.split_once('#').map_or(t, |(before, _)| before);
        let (path, query) = t.split_once('?').unwrap_or((t, ""));
        // RFC 9110 §4.2.3: an empty path in an absolute URI means "/".
        (if absolute && path.is_empty() { "/" } else { path }, query)
    }
}

/// Result of feeding bytes to a parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// The whole thing was there.
    Complete(T),
    /// More bytes are needed (never an error).
    Partial,
}

/// Everything that makes rwsgi refuse a request. Small and `Copy`: this is
/// the hot path's error type; [`HttpError::status`] is the one place that
/// maps an error to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The request line or a header line does not parse.
    Malformed,
    /// A line ends in LF without CR (RFC 9112 §2.2: rwsgi does not accept
    /// bare LF).
    BareLineFeed,
    /// The method is not a token.
    InvalidMethod,
    /// The request target is not a form RFC 9112 §3.2 allows for the method.
    InvalidTarget,
    /// A well-formed version rwsgi does not speak (HTTP/2.0).
    UnsupportedVersion,
    /// A field name that is not a token.
    InvalidHeaderName,
    /// A field value with a control byte.
    InvalidHeaderValue,
    /// obs-fold (RFC 9112 §5.2).
    ObsoleteLineFolding,
    /// An HTTP/1.1 request without Host (RFC 9112 §3.2).
    MissingHost,
    /// A field that may appear once (Host, Content-Length, Content-Type,
    /// Authorization) given more than once, even with the same value.
    DuplicateField,
    /// A Host value that is not `host[:port]`.
    InvalidHost,
    /// A Content-Length that is not digits only.
    InvalidContentLength,
    /// Content-Length values that differ.
    ConflictingContentLength,
    /// Both Content-Length and Transfer-Encoding (a smuggling attempt).
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1).
    TransferEncodingOnHttp10,
    /// Transfer codings that do not end with exactly one `chunked`.
    ChunkedNotFinal,
    /// A transfer coding rwsgi does not decode.
    UnknownTransferCoding,
    /// An `Expect` other than `100-continue`.
    UnsupportedExpectation,
    /// The request line is over `--limit-request-line`.
    RequestLineTooLong,
    /// More fields than `--limit-request-fields`.
    TooManyHeaders,
    /// A field line over `--limit-request-field_size`, or a head over every limit.
    HeaderTooLarge,
    /// A header name with `_` under `--header-map refuse`.
    UnderscoreInHeaderName,
    /// Trusted scheme headers disagree (one says https, another not).
    ConflictingScheme,
    /// A chunk size line or chunk end that does not parse.
    InvalidChunk,
    /// A trailer field line that breaks the header field rules.
    InvalidTrailer,
    /// A field that must not be sent as a trailer (RFC 9110 §6.5.1).
    ForbiddenTrailer,
    /// A chunk size past what rwsgi reads.
    ChunkTooLarge,
    /// A body over `--limit-request-body`.
    ContentTooLarge,
    /// The connection ended before the body did.
    TruncatedBody,
    /// The client was too slow sending the head or the body.
    Timeout,
    /// The peer may not send requests on this listener (`--uwsgi-allow-from`).
    Forbidden,
}

impl HttpError {
    /// The status code and reason phrase rwsgi answers with.
    pub fn status(self) -> (u16, &'static str) {
        use HttpError::*;
        match self {
            Malformed | BareLineFeed | InvalidMethod | InvalidTarget | InvalidHeaderName
            | InvalidHeaderValue | ObsoleteLineFolding | MissingHost | DuplicateField | InvalidHost
            | InvalidContentLength | ConflictingContentLength | ContentLengthWithTransferEncoding
            | TransferEncodingOnHttp10 | ChunkedNotFinal | InvalidChunk | TruncatedBody | ConflictingScheme
            | UnderscoreInHeaderName | InvalidTrailer | ForbiddenTrailer => {
                (400, "Bad Request")
            }
            Timeout => (408, "Request Timeout"),
            Forbidden => (403, "Forbidden"),
            ChunkTooLarge | ContentTooLarge => (413, "Content Too Large"),
            RequestLineTooLong => (414, "URI Too Long"),
            UnsupportedExpectation => (417, "Expectation Failed"),
            TooManyHeaders | HeaderTooLarge => (431, "Request Header Fields Too Large"),
            UnknownTransferCoding => (501, "Not Implemented"),
            UnsupportedVersion => (505, "HTTP Version Not Supported"),
        }
    }

    /// A short description for the log and the error body.
    pub fn describe(self) -> &'static str {
        use HttpError::*;
        match self {
            Malformed => "malformed request",
            BareLineFeed => "bare LF in request head",
            InvalidMethod => "invalid method",
            InvalidTarget => "invalid request target",
            UnsupportedVersion => "unsupported HTTP version",
            InvalidHeaderName => "invalid header name",
            InvalidHeaderValue => "invalid header value",
            ObsoleteLineFolding => "obsolete line folding",
            MissingHost => "missing Host header",
            DuplicateField => "a field that may appear once appears twice",
            InvalidHost => "invalid Host header",
            InvalidContentLength => "invalid Content-Length",
            ConflictingContentLength => "conflicting Content-Length headers",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            TransferEncodingOnHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            ChunkedNotFinal => "chunked is not the final transfer coding",
            UnknownTransferCoding => "unknown transfer coding",
            UnsupportedExpectation => "unsupported Expect value",
            RequestLineTooLong => "request line too long",
            TooManyHeaders => "too many header fields",
            HeaderTooLarge => "header field too large",
            ConflictingScheme => "contradictory scheme headers",
            UnderscoreInHeaderName => "header name with an underscore",
            InvalidChunk => "invalid chunked encoding",
            InvalidTrailer => "invalid trailer field",
            ForbiddenTrailer => "forbidden trailer field",
            ChunkTooLarge => "chunk size too large",
            ContentTooLarge => "request body larger than the server allows",
            TruncatedBody => "request body ended early",
            Timeout => "timed out reading the request",
            Forbidden => "this peer may not send requests here",
        }
    }
}

/// The most bytes a request head may take under `limits`: the request
/// line and its CRLF, every field at its largest (its CRLF counted in the
/// field size), and the empty line.
pub fn max_head_len(limits: &RequestLimits) -> usize {
    let line = if limits.request_line == 0 { 64 * 1024 } else { limits.request_line };
    let field = if limits.field_size == 0 { 64 * 1024 } else { limits.field_size };
    line.saturating_add(2).saturating_add(limits.fields.saturating_mul(field)).saturating_add(2)
}

/// Parse and check a request head at the start of `buf`.
pub fn parse_request(buf: &[u8], limits: &RequestLimits) -> Result<Parse<Request>, HttpError> {
    // RFC 9112 §2.2: a server SHOULD ignore empty lines before the request
    // line. Skip them here so every check below sees the real head.
    let skip = leading_empty_lines(buf);
    let buf = &buf[skip..];
    let head_end = find_head_end(buf);
    check_line_ends(&buf[..head_end.unwrap_or(buf.len())])?;
    if limits.permit_obsolete_folding || limits.strip_header_spaces {
        if let Some(result) = parse_lenient(buf, limits) {
            return result.map(|parsed| match parsed {
                Parse::Complete(mut req) => {
                    req.head_len += skip;
                    Parse::Complete(req)
                }
                Parse::Partial => Parse::Partial,
            });
        }
    }
    if check_limits(buf, head_end, limits)? == Parse::Partial {
        return Ok(Parse::Partial);
    }

    // One slot more than allowed, to tell "too many" from "exactly the
    // limit"; on the stack for the usual limits, on the heap beyond.
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let slots: &mut [httparse::Header<'_>] = if limits.fields < STACK_HEADERS {
        &mut on_stack[..limits.fields + 1]
    } else {
        on_heap.resize(limits.fields + 1, httparse::EMPTY_HEADER);
        &mut on_heap
    };
    let mut req = httparse::Request::new(slots);
    let status = httparse::ParserConfig::default().parse_request(&mut req, buf);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parse::Partial),
        Err(e) => return Err(map_httparse_error(e, buf)),
    };
    if req.headers.len() > limits.fields {
        return Err(HttpError::TooManyHeaders);
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    check_method(method, limits)?;
    // Folded first, so the target is checked against the method the app sees.
    let method = if limits.casefold_method { method.to_ascii_uppercase() } else { method.to_string() };
    check_target(&method, target)?;

    let headers = req
        .headers
        .iter()
        .map(|h| Header { name: h.name.to_string(), value: trim_ows(h.value).to_vec() })
        .collect();
    let mut request = Request {
        method,
        target: target.to_string(),
        version,
        headers,
        framing: BodyFraming::Empty,
        keep_alive: version == Version::Http11,
        expect_continue: false,
        head_len: skip + head_len,
        params: Vec::new(),
    };
    apply_semantics(&mut request)?;
    Ok(Parse::Complete(request))
}

/// The request line and the fields within their limits, as far as they
/// have come (so a head that outgrows them is refused before it ends);
/// `Partial` until the request line is whole.
fn check_limits(buf: &[u8], head_end: Option<usize>, limits: &RequestLimits) -> Result<Parse<()>, HttpError> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    // A read may end between CR and LF; the CR is not part of the line.
    let line_len = line_end.unwrap_or(buf.len() - usize::from(buf.last() == Some(&b'\r')));
    if limits.request_line > 0 && line_len > limits.request_line {
        return Err(HttpError::RequestLineTooLong);
    }
    let Some(line_end) = line_end else { return Ok(Parse::Partial) };
    check_field_lines(&buf[line_end + 2..head_end.unwrap_or(buf.len())], limits.field_size, false)?;
    // httparse stops at the first oversize field only once it has the whole
    // head; refuse a head that has outgrown every limit without waiting.
    if head_end.is_none() && buf.len() > max_head_len(limits) {
        return Err(HttpError::HeaderTooLarge);
    }
    Ok(Parse::Complete(()))
}

/// Under `--permit-obsolete-folding` or `--strip-header-spaces`: a head
/// with what they permit is parsed from a copy where each fold (CRLF then
/// SP/HTAB, with the whitespace around it) is one SP (RFC 9112 §5.2), and
/// the spaces between a field's name and its colon are gone. `None` when
/// `buf` has nothing to rewrite, to parse it as it is. A fold right after
/// the request line is not a continuation of anything and is left for the
/// parser to refuse.
fn parse_lenient(buf: &[u8], limits: &RequestLimits) -> Option<Result<Parse<Request>, HttpError>> {
    let fields_start = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    let head_end = find_head_end(buf);
    let fields = &buf[fields_start..head_end.unwrap_or(buf.len())];
    let unfold = limits.permit_obsolete_folding && fields.windows(3).any(is_fold);
    // An unfinished head waits whole: its last line may be a name whose
    // spaces are followed by a colon in the next read.
    let strip = limits.strip_header_spaces && (head_end.is_none() || fields.split(|&b| b == b'\n').any(|l| name_end(l).is_some()));
    if !unfold && !strip {
        return None;
    }
    // Held to the limits as received, folds and spaces included, whether
    // or not the head is whole yet: any split of the same bytes gives the
    // same answer.
    if let Err(e) = check_field_lines(fields, limits.field_size, unfold) {
        return Some(Err(e));
    }
    if head_end.unwrap_or(buf.len()) > max_head_len(limits) {
        return Some(Err(HttpError::HeaderTooLarge));
    }
    let Some(head_end) = head_end else { return Some(Ok(Parse::Partial)) };
    let mut copy = buf[..head_end].to_vec();
    if unfold {
        copy = unfolded(&copy, fields_start);
    }
    if strip {
        copy = names_stripped(&copy, fields_start);
    }
    let strict = RequestLimits { permit_obsolete_folding: false, strip_header_spaces: false, ..*limits };
    Some(match parse_request(&copy, &strict) {
        Ok(Parse::Complete(mut req)) => {
            req.head_len = head_end;
            Ok(Parse::Complete(req))
        }
        // The copy ends with the CRLFCRLF it was cut at: always whole.
        Ok(Parse::Partial) => Err(HttpError::Malformed),
        Err(e) => Err(e),
    })
}

/// CRLF then SP or HTAB: an obs-fold.
fn is_fold(w: &[u8]) -> bool {
    w[0] == b'\r' && w[1] == b'\n' && (w[2] == b' ' || w[2] == b'\t')
}

/// `head` with each fold after `from` made one SP.
fn unfolded(head: &[u8], from: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    out.extend_from_slice(&head[..from]);
    let mut i = from;
    while i < head.len() {
        if i + 2 < head.len() && is_fold(&head[i..i + 3]) {
            while out.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                out.pop();
            }
            out.push(b' ');
            i += 2;
            while i < head.len() && (head[i] == b' ' || head[i] == b'\t') {
                i += 1;
            }
        } else {
            out.push(head[i]);
            i += 1;
        }
    }
    out
}

/// Where a field line's name ends when spaces or tabs stand between it
/// and its colon (`Host : x`); `None` for a line without them (or a
/// continuation line).
fn name_end(line: &[u8]) -> Option<usize> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let end = name.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    (end > 0 && end < colon).then_some(end)
}

/// `head` with the spaces between each field name after `from` and its
/// colon taken out.
fn names_stripped(head: &[u8], from: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    out.extend_from_slice(&head[..from]);
    for line in head[from..].split_inclusive(|&b| b == b'\n') {
        match name_end(line) {
            Some(end) => {
                out.extend_from_slice(&line[..end]);
                out.extend_from_slice(&line[line.iter().position(|&b| b == b':').unwrap_or(end)..]);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// Header slots kept on the stack (the default limit is 100 fields).
const STACK_HEADERS: usize = 128;

/// Bytes of CRLF pairs before the request line.
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut n = 0;
    while buf[n..].starts_with(b"\r\n") {
        n += 2;
    }
    n
}

/// Every field within `field_size`, counted as Gunicorn counts it: its
/// line as sent (OWS included) with its CRLF, and, where obs-fold is
/// permitted (`folding`), each continuation line with its own. An
/// unfinished last line counts as if its CRLF had come, so any split of
/// the same bytes gives the same answer.
fn check_field_lines(fields: &[u8], field_size: usize, folding: bool) -> Result<(), HttpError> {
    if field_size == 0 {
        return Ok(());
    }
    let mut size = 0;
    for line in fields.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(&first) = line.first() else {
            // The end of the head, or nothing yet after the last LF.
            size = 0;
            continue;
        };
        let continues = folding && (first == b' ' || first == b'\t');
        size = if continues { size } else { 0 } + line.len() + 2;
        if size > field_size {
            return Err(HttpError::HeaderTooLarge);
        }
    }
    Ok(())
}

/// Gunicorn's conventional method: 3 to 20 token characters, no lowercase
/// letter and no `#`. Any token is a valid method (RFC 9110 §9.1), but an
/// unusual one is a place where two parsers may disagree (is `get` GET?):
/// refused unless `--permit-unconventional-http-method`.
pub fn check_method(method: &str, limits: &RequestLimits) -> Result<(), HttpError> {
    let conventional =
        (3..=20).contains(&method.len()) && !method.bytes().any(|b| b.is_ascii_lowercase() || b == b'#');
    if conventional || limits.permit_unconventional_method {
        Ok(())
    } else {
        Err(HttpError::InvalidMethod)
    }
}

/// RFC 9112 §2.2: a bare CR, or LF not preceded by CR, in the head is an
/// error. Only the head is given; a body may hold any bytes.
fn check_line_ends(head: &[u8]) -> Result<(), HttpError> {
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if i == 0 || head[i - 1] != b'\r' => return Err(HttpError::BareLineFeed),
            b'\r' if i + 1 < head.len() && head[i + 1] != b'\n' => return Err(HttpError::Malformed),
            _ => {}
        }
    }
    Ok(())
}

/// Offset just past the CRLFCRLF that ends the head, if present.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    // Look at each LF only: the common case is a short head.
    (3..buf.len()).find(|&i| buf[i] == b'\n' && buf[i - 1] == b'\r' && buf[i - 2] == b'\n' && buf[i - 3] == b'\r').map(|i| i + 1)
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> HttpError {
    match e {
        httparse::Error::HeaderName => {
            // A header line starting with whitespace is obs-fold.
            let folded = buf.windows(2).any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'));
            if folded { HttpError::ObsoleteLineFolding } else { HttpError::InvalidHeaderName }
        }
        httparse::Error::HeaderValue => HttpError::InvalidHeaderValue,
        httparse::Error::NewLine => HttpError::BareLineFeed,
        httparse::Error::Token => HttpError::InvalidMethod,
        httparse::Error::Version => {
            // 505 for a well-formed version rwsgi does not speak
            // (HTTP/2.0, HTTP/1.2); anything else is not HTTP: 400.
            let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
            let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let version = parts.last().copied().unwrap_or_default();
            let well_formed = parts.len() == 3
                && version.len() == 8
                && version.starts_with(b"HTTP/")
                && version[5].is_ascii_digit()
                && version[6] == b'.'
                && version[7].is_ascii_digit();
            if well_formed { HttpError::UnsupportedVersion } else { HttpError::Malformed }
        }
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::Status => HttpError::Malformed,
    }
}

/// RFC 9112 §3.2: origin-form, absolute-form, `*` only for OPTIONS,
/// authority-form only for CONNECT; no control bytes anywhere.
fn check_target(method: &str, target: &str) -> Result<(), HttpError> {
    if target.bytes().any(|b| b < 0x21 || b == 0x7f) {
        return Err(HttpError::InvalidTarget);
    }
    let ok = if method == "CONNECT" {
        // authority-form: host:port, nothing else.
        !target.contains('/') && target.contains(':')
    } else if target == "*" {
        method == "OPTIONS"
    } else {
        target.starts_with('/') || absolute_form_rest(target).is_some()
    };
    if ok { Ok(()) } else { Err(HttpError::InvalidTarget) }
}

/// For an absolute-form target, what follows `http://` or `https://`
/// (scheme matched case-insensitively, RFC 3986 §3.1).
fn absolute_form_rest(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")).then_some(rest)
}

/// RFC 9110 §7.2: Host = uri-host [ ":" port ]; empty is allowed.
fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else { return false };
        let inside = &v[1..end];
        if inside.is_empty() || !inside.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b)) {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..0], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &v[..0]),
        }
    };
    let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b);
    host.iter().all(reg_name) && port.iter().all(u8::is_ascii_digit)
}

/// Framing, Host, Expect and Connection rules (RFC 9110 §7.2, §10.1.1;
/// RFC 9112 §6, §9.3).
fn apply_semantics(req: &mut Request) -> Result<(), HttpError> {
    let fields = FramingFields::scan(req)?;
    // RFC 9110 §5.3: a field that is not a list may appear once. Repeats
    // of those a server or app acts on are refused even when equal (as
    // Gunicorn does): two parsers could keep different ones.
    if fields.hosts > 1 || fields.singletons.iter().any(|n| *n > 1) {
        return Err(HttpError::DuplicateField);
    }
    // RFC 9112 §3.2: a 1.1 request without Host is a 400.
    if fields.hosts == 0 && req.version == Version::Http11 {
        return Err(HttpError::MissingHost);
    }
    req.framing = fields.body_framing(req.version)?;
    req.keep_alive = match req.version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };
    Ok(())
}

/// Fields besides Host that may appear once and that a server or an app
/// acts on (RFC 9110 §5.3: not lists).
const SINGLETON_FIELDS: [&str; 3] = ["content-length", "content-type", "authorization"];

/// What a request's header fields say about its framing and connection.
#[derive(Default)]
struct FramingFields {
    content_length: Option<u64>,
    /// The transfer codings, lower-cased, in order.
    transfer_encoding: Vec<Vec<u8>>,
    has_transfer_encoding: bool,
    hosts: usize,
    /// How often each of [`SINGLETON_FIELDS`] appears.
    singletons: [usize; SINGLETON_FIELDS.len()],
    /// `Connection: close`.
    close: bool,
    /// `Connection: keep-alive`.
    keep_alive: bool,
}

impl FramingFields {
    /// Read the fields of `req` that frame it; `Expect` is applied to
    /// `req` on the way.
    fn scan(req: &mut Request) -> Result<FramingFields, HttpError> {
        let mut f = FramingFields::default();
        for h in &req.headers {
            let name = h.name.as_str();
            if let Some(i) = SINGLETON_FIELDS.iter().position(|s| name.eq_ignore_ascii_case(s)) {
                f.singletons[i] += 1;
            }
            if name.eq_ignore_ascii_case("content-length") {
                // RFC 9112 §6.3 lets a recipient fold a list of equal
                // values into one; rwsgi refuses the list (digits only, as
                // Gunicorn), so no two parsers can read it differently.
                let n = parse_content_length(&h.value)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(HttpError::ConflictingContentLength);
                }
                f.content_length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                f.has_transfer_encoding = true;
                let codings = h.value.split(|&b| b == b',').map(trim_ows).filter(|c| !c.is_empty());
                f.transfer_encoding.extend(codings.map(<[u8]>::to_ascii_lowercase));
            } else if name.eq_ignore_ascii_case("host") {
                f.hosts += 1;
                if !is_valid_host(&h.value) {
                    return Err(HttpError::InvalidHost);
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(trim_ows) {
                    f.close |= token.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                // RFC 9110 §10.1.1: the only expectation defined is 100-continue.
                if !h.value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError::UnsupportedExpectation);
                }
                req.expect_continue = req.version == Version::Http11;
            }
        }
        Ok(f)
    }

    /// How the body is delimited (RFC 9112 §6.3).
    fn body_framing(&self, version: Version) -> Result<BodyFraming, HttpError> {
        if !self.has_transfer_encoding {
            return Ok(match self.content_length {
                Some(0) | None => BodyFraming::Empty,
                Some(n) => BodyFraming::Length(n),
            });
        }
        // RFC 9112 §6.1: TE in a 1.0 request means the framing is faulty.
        if version == Version::Http10 {
            return Err(HttpError::TransferEncodingOnHttp10);
        }
        // RFC 9112 §6.3 (3): TE with CL is a smuggling attempt; refuse it.
        if self.content_length.is_some() {
            return Err(HttpError::ContentLengthWithTransferEncoding);
        }
        // RFC 9112 §6.3 (4): chunked not final is a MUST-400, checked
        // before the SHOULD-501 for codings rwsgi does not know (§6.1).
        let codings = &self.transfer_encoding;
        if codings.last().map(Vec::as_slice) != Some(b"chunked")
            || codings.iter().filter(|c| c.as_slice() == b"chunked").count() > 1
        {
            return Err(HttpError::ChunkedNotFinal);
        }
        for coding in codings {
            if !matches!(coding.as_slice(), b"chunked" | b"gzip" | b"deflate" | b"compress" | b"x-gzip") {
                return Err(HttpError::UnknownTransferCoding);
            }
        }
        if codings.len() > 1 {
            // Compressed transfer codings are valid HTTP but rwsgi does not
            // decode them; say so rather than hand the app gzip bytes.
            return Err(HttpError::UnknownTransferCoding);
        }
        Ok(BodyFraming::Chunked)
    }
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT, nothing else (no sign, no
/// spaces inside, no overflow).
pub fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::InvalidContentLength);
    }
    v.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(HttpError::InvalidContentLength)
}

/// The scheme a trusted proxy reports through `scheme_headers` (lower-case
/// names, and the value that means https, matched exactly as Gunicorn
/// matches it): `Some(true)` for https, `Some(false)` for plain, `None`
/// without any of the headers; headers that disagree are an error.
pub fn forwarded_scheme_is_secure(req: &Request, scheme_headers: &[(String, String)]) -> Result<Option<bool>, HttpError> {
    let mut verdict = None;
    for h in &req.headers {
        let Some((_, secure_value)) = scheme_headers.iter().find(|(n, _)| h.name.eq_ignore_ascii_case(n)) else {
            continue;
        };
        let secure = h.value == secure_value.as_bytes();
        if verdict.is_some_and(|v| v != secure) {
            return Err(HttpError::ConflictingScheme);
        }
        verdict = Some(secure);
    }
    Ok(verdict)
}

/// Trim SP and HTAB only (RFC 9110 §5.5 OWS); never other whitespace.
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |i| i + 1);
    &v[start..end]
}

/// RFC 9110 §5.6.2 token characters.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter().all(|&b| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// RFC 9110 §5.5 field-value: no CTLs except HTAB, so no CR/LF/NUL.
pub fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests;

//! Packets as nginx's `uwsgi_pass` builds them (with `include uwsgi_params;`),
//! and broken ones; each fed whole and at every split.

use super::*;

const LIMITS: RequestLimits = RequestLimits { request_line: 4094, fields: 100, field_size: 8190, permit_obsolete_folding: false, permit_unconventional_method: false, casefold_method: false, strip_header_spaces: false };

/// A packet with these variables, in order.
fn packet(vars: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut p = vec![0];
    p.extend_from_slice(&(block.len() as u16).to_le_bytes());
    p.push(0);
    p.extend_from_slice(&block);
    p
}

/// What nginx's uwsgi_params sends for `GET /a%20b?x=1` plus two headers.
fn nginx_get() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("QUERY_STRING", b"x=1"),
        ("REQUEST_METHOD", b"GET"),
        ("CONTENT_TYPE", b""),
        ("CONTENT_LENGTH", b""),
        ("REQUEST_URI", b"/a%20b?x=1"),
        ("PATH_INFO", b"/a b"),
        ("DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("REQUEST_SCHEME", b"http"),
        ("HTTPS", b""),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("REMOTE_PORT", b"51234"),
        ("SERVER_PORT", b"8080"),
        ("SERVER_NAME", b"example.org"),
        ("HTTP_HOST", b"example.org:8080"),
        ("HTTP_USER_AGENT", b"curl/7.88.1"),
    ]
}

fn complete(buf: &[u8]) -> Request {
    match parse_packet(buf, &LIMITS) {
        Ok(Parse::Complete(r)) => r,
        other => panic!("want a request, got {other:?}"),
    }
}

/// Every prefix shorter than the packet head is Partial (or, for a
/// refused packet, Partial or the same error); the whole gives `want`.
fn check_splits(buf: &[u8], want: &Result<Parse<Request>, UwsgiError>) {
    for k in 0..buf.len() {
        let got = parse_packet(&buf[..k], &LIMITS);
        let fine = match want {
            Ok(Parse::Complete(r)) if k >= r.head_len => &got == want,
            Ok(_) => got == Ok(Parse::Partial),
            Err(_) => got == Ok(Parse::Partial) || &got == want,
        };
        assert!(fine, "prefix {k} of {}: got {got:?}, whole gives {want:?}", buf.len());
    }
}

#[test]
fn an_nginx_get() {
    let mut buf = packet(&nginx_get());
    let head_len = buf.len();
    buf.extend_from_slice(b"ignored: not part of the head");
    let r = complete(&buf);
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/a%20b?x=1");
    assert_eq!(r.version, Version::Http11);
    assert_eq!(r.framing, BodyFraming::Empty);
    assert!(!r.keep_alive, "one request per uwsgi connection");
    assert_eq!(r.head_len, head_len);
    let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name.as_str(), h.value.as_slice())).collect();
    assert_eq!(headers, vec![("HOST", &b"example.org:8080"[..]), ("USER-AGENT", b"curl/7.88.1")]);
    assert_eq!(r.param("PATH_INFO"), Some(&b"/a b"[..]));
    assert_eq!(r.param("REMOTE_PORT"), Some(&b"51234"[..]));
    assert_eq!(r.param("REQUEST_METHOD"), None, "method is not a param");
    assert_eq!(r.param("REQUEST_URI"), Some(&b"/a%20b?x=1"[..]));
    assert!(!is_https(&r));
    check_splits(&buf[..head_len], &Ok(Parse::Complete(r)));
}

#[test]
fn a_post_with_body_length_and_type() {
    let mut vars = nginx_get();
    vars[1] = ("REQUEST_METHOD", b"POST");
    vars[2] = ("CONTENT_TYPE", b"application/json");
    vars[3] = ("CONTENT_LENGTH", b"17");
    let r = complete(&packet(&vars));
    assert_eq!(r.framing, BodyFraming::Length(17));
    assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
    assert_eq!(r.header("content-length"), Some(&b"17"[..]));
}

#[test]
fn scheme_and_version_variables() {
    for (var, value, https) in [
        ("HTTPS", &b"on"[..], true),
        ("HTTPS", b"ON", true),
        ("HTTPS", b"1", true),
        ("HTTPS", b"off", false),
        ("REQUEST_SCHEME", b"https", true),
        ("UWSGI_SCHEME", b"https", true),
        ("UWSGI_SCHEME", b"http", false),
    ] {
        let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/"), (var, value)]));
        assert_eq!(is_https(&r), https, "{var}={value:?}");
    }
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/"), ("SERVER_PROTOCOL", b"HTTP/1.0")]));
    assert_eq!(r.version, Version::Http10);
    // HTTP/2 from the client to nginx: the environ says so; framing is 1.1.
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/"), ("SERVER_PROTOCOL", b"HTTP/2.0")]));
    assert_eq!(r.version, Version::Http11);
    assert_eq!(r.param("SERVER_PROTOCOL"), Some(&b"HTTP/2.0"[..]));
}

#[test]
fn target_rebuilt_without_request_uri() {
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("PATH_INFO", b"/p"), ("QUERY_STRING", b"q=1")]));
    assert_eq!(r.target, "/p?q=1");
    assert_eq!(r.param("REQUEST_URI"), Some(&b"/p?q=1"[..]));
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET")]));
    assert_eq!(r.target, "/");
    // PATH_INFO is decoded: what cannot stand in a target is encoded again.
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("PATH_INFO", "/a b/é%?#".as_bytes()), ("QUERY_STRING", b"x=a b#")]));
    assert_eq!(r.target, "/a%20b/%C3%A9%25%3F%23?x=a%20b%23");
}

#[test]
fn raw_utf8_in_the_uri_is_kept() {
    let r = complete(&packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", "/café?q=é".as_bytes())]));
    assert_eq!(r.target, "/café?q=é");
}

#[test]
fn chunked_from_the_client_is_already_undone() {
    let r = complete(&packet(&[
        ("REQUEST_METHOD", b"POST"),
        ("REQUEST_URI", b"/"),
        ("CONTENT_LENGTH", b"5"),
        ("HTTP_TRANSFER_ENCODING", b"chunked"),
    ]));
    assert_eq!(r.framing, BodyFraming::Length(5));
    assert_eq!(r.header("transfer-encoding"), None);
}

#[test]
fn content_variables_speak_for_the_body() {
    // nginx sends the client's Content-Length/-Type as HTTP_* too; only
    // CONTENT_LENGTH and CONTENT_TYPE count, whatever the case or dashes.
    let r = complete(&packet(&[
        ("REQUEST_METHOD", b"POST"),
        ("REQUEST_URI", b"/"),
        ("HTTP_CONTENT_LENGTH", b"99"),
        ("HTTP_Content-Type", b"a/b"),
        ("HTTP_TRANSFER-ENCODING", b"chunked"),
        ("CONTENT_TYPE", b" "),
    ]));
    assert_eq!(r.framing, BodyFraming::Empty);
    assert!(r.headers.is_empty(), "{:?}", r.headers);
}

#[test]
fn refusals() {
    use HttpError::*;
    let get = |extra: &[(&str, &[u8])]| {
        let mut v: Vec<(&str, &[u8])> = vec![("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/")];
        v.extend_from_slice(extra);
        packet(&v)
    };
    let many: Vec<(String, Vec<u8>)> = (0..101).map(|i| (format!("HTTP_X_{i}"), b"v".to_vec())).collect();
    let many_refs: Vec<(&str, &[u8])> = many.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let long_uri = format!("/{}", "a".repeat(4094));
    let long_value = "v".repeat(8190);
    let mut truncated = get(&[]);
    truncated[1] += 3; // the block claims 3 bytes more than its pairs hold...
    truncated.extend_from_slice(&[5, 0, b'K']); // ...and they are a cut-off key.
    let rows: Vec<(&str, Vec<u8>, UwsgiError)> = vec![
        ("http request line", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), UwsgiError::Malformed(LOOKS_LIKE_HTTP)),
        ("modifier1 5 (PSGI)", vec![5, 0, 0, 0], UwsgiError::Malformed("unsupported modifier (rwsgi serves modifier1 0, modifier2 0: WSGI requests)")),
        ("modifier2 1", vec![0, 0, 0, 1], UwsgiError::Malformed("unsupported modifier (rwsgi serves modifier1 0, modifier2 0: WSGI requests)")),
        ("no method", packet(&[("REQUEST_URI", b"/")]), UwsgiError::Malformed("no REQUEST_METHOD variable (is 'include uwsgi_params;' missing?)")),
        ("pair past the block", truncated, UwsgiError::Malformed("a variable runs past the end of the block")),
        ("empty key", get(&[("", b"x")]), UwsgiError::Malformed("a variable name that is empty or not printable ASCII")),
        ("key with space", get(&[("A B", b"x")]), UwsgiError::Malformed("a variable name that is empty or not printable ASCII")),
        ("method not a token", packet(&[("REQUEST_METHOD", b"G T"), ("REQUEST_URI", b"/")]), UwsgiError::Http(InvalidMethod)),
        ("bad content length", get(&[("CONTENT_LENGTH", b"-1")]), UwsgiError::Http(InvalidContentLength)),
        ("content length with space", get(&[("CONTENT_LENGTH", b"1 2")]), UwsgiError::Http(InvalidContentLength)),
        ("target with space", packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/a b")]), UwsgiError::Http(InvalidTarget)),
        ("target not utf-8", packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/\xe9")]), UwsgiError::Http(InvalidTarget)),
        ("target with del", packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", b"/\x7f")]), UwsgiError::Http(InvalidTarget)),
        ("target too long", packet(&[("REQUEST_METHOD", b"GET"), ("REQUEST_URI", long_uri.as_bytes())]), UwsgiError::Http(RequestLineTooLong)),
        ("header value with cr", get(&[("HTTP_X", b"a\rb")]), UwsgiError::Http(InvalidHeaderValue)),
        ("header name not a token", get(&[("HTTP_X/Y", b"a")]), UwsgiError::Http(InvalidHeaderName)),
        ("header too large", get(&[("HTTP_X", long_value.as_bytes())]), UwsgiError::Http(HeaderTooLarge)),
        ("too many headers", packet(&[&[("REQUEST_METHOD", &b"GET"[..])], many_refs.as_slice()].concat()), UwsgiError::Http(TooManyHeaders)),
    ];
    for (name, buf, want) in rows {
        let want = Err(want);
        assert_eq!(parse_packet(&buf, &LIMITS), want, "{name}");
        check_splits(&buf, &want);
    }
}

#[test]
fn encode_round_trips() {
    let mut vars = nginx_get();
    vars[1] = ("REQUEST_METHOD", b"PUT");
    vars[3] = ("CONTENT_LENGTH", b"3");
    let first = complete(&packet(&vars));
    let mut again = complete(&encode_packet(&first).expect("fits in a packet"));
    // Empty variables (CONTENT_TYPE "") are not sent again: only the
    // packet's length may differ.
    assert!(again.head_len < first.head_len);
    again.head_len = first.head_len;
    assert_eq!(again, first.clone());
    assert_eq!(again.framing, BodyFraming::Length(3));
}

#!/usr/bin/env python3
"""Write the seed corpora under fuzz/corpus/<target>/ (checked in).

Each seed starts with the target's config bytes (see the comment at the
top of each fuzz_targets/*.rs), then real input. Run from anywhere:
    python3 fuzz/gen_corpus.py
It rewrites the seed files it knows and leaves other files alone.
"""
import ipaddress
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- http_head
# [cfg, request_line, fields, field_size, prefix choice] + head (+ body).
DEFAULT, SMALL, UNLIMITED, CUSTOM, FOLD = 0, 1, 2, 3, 4


def http(name, head, cfg=DEFAULT, custom=(64, 8, 64)):
    write("http_head", name, bytes([cfg, *custom, 0x80]) + head)


H = b"Host: www.example.com\r\n"
http("rfc9112-origin-form", b"GET /where?q=now HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
http("rfc9112-absolute-form", b"GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n")
http("rfc9112-authority-form", b"CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n")
http("rfc9112-asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n")
http("rfc9110-hello", b"GET /hello.txt HTTP/1.1\r\nUser-Agent: curl/7.64.1\r\nHost: www.example.com\r\nAccept-Language: en, mi\r\n\r\n")
http("http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
http("http10-no-host", b"GET /index.html HTTP/1.0\r\n\r\n")
http("post-content-length", b"POST /form HTTP/1.1\r\n" + H + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2")
http("post-chunked", b"POST /up HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
http("expect-100", b"PUT /f HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
http("connection-close", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
http("pipelined", b"GET /1 HTTP/1.1\r\n" + H + b"\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\n")
http("leading-crlf", b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n")
http("browser-like", b"GET /search?q=rust&lang=en HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
     b"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n"
     b"Cookie: a=1; b=2\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n")
http("ipv6-host", b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n")
http("obs-text-value", b"GET / HTTP/1.1\r\n" + H + b"X-Name: caf\xe9\tau lait \r\n\r\n")
http("empty-value", b"GET / HTTP/1.1\r\n" + H + b"X-Empty:\r\nX-Spaces:   \r\n\r\n")
# Smuggling attempts and framing conflicts (all refused).
http("smuggle-cl-te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED")
http("smuggle-te-cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n")
http("smuggle-cl-cl", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nContent-Length: 5\r\n\r\n12345G")
http("cl-list-equal", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\n12345")
http("cl-plus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\n12345")
http("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\n12345")
http("te-space-before-colon", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n")
http("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n")
http("te-chunked-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n")
http("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
http("te-chunked-twice", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n")
http("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
http("te-vertical-tab", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n")
http("te-obs-fold", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n")
http("bare-lf", b"GET / HTTP/1.1\nHost: www.example.com\n\n")
http("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n")
http("duplicate-host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
http("missing-host", b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n")
http("host-with-path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")
http("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n")
http("space-in-target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n")
http("http2-version", b"GET / HTTP/2.0\r\n" + H + b"\r\n")
http("http09", b"GET /\r\n\r\n")
http("expect-other", b"GET / HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\n\r\n")
http("underscore-header", b"GET / HTTP/1.1\r\n" + H + b"X_Forwarded_For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n")
# obs-fold, permitted (cfg bit 2) and not.
http("fold-permitted", b"GET / HTTP/1.1\r\n" + H + b"X-Long: first\r\n second\r\n\tthird\r\n\r\n", cfg=FOLD)
http("fold-permitted-cl", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n 3\r\n\r\nabc", cfg=FOLD)
http("fold-after-request-line", b"GET / HTTP/1.1\r\n Host: a\r\nX: a\r\n b\r\n\r\n", cfg=FOLD)
http("fold-refused", b"GET / HTTP/1.1\r\n" + H + b"X-Long: first\r\n second\r\n\r\n")
http("fold-small-limits", b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n 0123456789\r\n\r\n", cfg=FOLD | SMALL)
# Limits.
http("small-ok", b"GET /abc HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", cfg=SMALL)
http("small-line-too-long", b"GET /0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: h\r\n\r\n", cfg=SMALL)
http("small-too-many-fields", b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", cfg=SMALL)
http("small-field-too-large", b"GET / HTTP/1.1\r\nHost: h\r\nX: 01234567890123456789012345\r\n\r\n", cfg=SMALL)
http("unlimited", b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: h\r\nX: " + b"b" * 300 + b"\r\n\r\n", cfg=UNLIMITED)
http("custom-limits", b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", cfg=CUSTOM, custom=(20, 1, 10))

# ------------------------------------------------------------------ chunked
# [split, max_out - 1, read size - 1, re-encode chunk size] + body.


def chunked(name, body, cfg=(0x80, 3, 6, 5)):
    write("chunked", name, bytes(cfg) + body)


chunked("simple", b"5\r\nhello\r\n0\r\n\r\n")
chunked("two-chunks", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
chunked("empty", b"0\r\n\r\n")
chunked("wikipedia", b"4\r\nWiki\r\n7\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\n\r\n")
chunked("extensions", b"4;name=value\r\nWiki\r\n5;a=\"q;\\\"x\";b\r\npedia\r\n0;last\r\n\r\n")
chunked("bws-before-ext", b"5 \t;ext=1\r\nhello\r\n0 \r\n\r\n")
chunked("trailers", b"5\r\nhello\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Checksum: abc123\r\n\r\n")
chunked("trailer-empty-value", b"0\r\nX-Empty:\r\n\r\n")
chunked("forbidden-trailer", b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n")
chunked("trailer-obs-fold", b"0\r\nA: 1\r\n 2\r\n\r\n")
chunked("trailer-no-colon", b"0\r\nnot a field\r\n\r\n")
chunked("uppercase-hex", b"A\r\n0123456789\r\n0\r\n\r\n")
chunked("leading-zeros", b"0005\r\nhello\r\n000\r\n\r\n")
chunked("pipelined-after", b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
chunked("binary-data", b"8\r\n\x00\r\n\xff\r\n0\r\n\r\n\r\n0\r\n\r\n")
chunked("bare-lf", b"5\nhello\n0\n\n")
chunked("lf-after-data", b"5\r\nhello\n0\r\n\r\n")
chunked("negative", b"-5\r\nhello\r\n0\r\n\r\n")
chunked("hex-prefix", b"0x5\r\nhello\r\n0\r\n\r\n")
chunked("too-large", b"ffffffffffffffff0\r\n")
chunked("max-digits", b"fffffffffffffff\r\nabc")
chunked("data-longer-than-size", b"3\r\nhello\r\n0\r\n\r\n")
chunked("data-shorter-than-size", b"8\r\nhello\r\n0\r\n\r\n")
chunked("truncated", b"5\r\nhel")
chunked("no-final-crlf", b"5\r\nhello\r\n0\r\n")
chunked("ext-with-ctl", b"5;a=\x01\r\nhello\r\n0\r\n\r\n")
chunked("smuggle-size-overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n")
chunked("smuggle-nested", b"2\r\n0\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n")
chunked("space-in-size", b"5 5\r\nhello\r\n0\r\n\r\n")
chunked("big-one-byte-reads", b"40\r\n" + b"x" * 64 + b"\r\n" + b"1;e\r\ny\r\n0\r\nT: v\r\n\r\n", cfg=(0x10, 0, 0, 7))
chunked("split-at-end", b"5\r\nhello\r\n0\r\n\r\n", cfg=(0xff, 0xff, 0xff, 0))
chunked("split-at-start", b"5\r\nhello\r\n0\r\n\r\n", cfg=(0, 0, 0, 1))

# ------------------------------------------------------------- uwsgi_packet


def uwsgi_vars(pairs):
    out = b""
    for k, v in pairs:
        if isinstance(k, str):
            k = k.encode()
        if isinstance(v, str):
            v = v.encode()
        out += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return out


def uwsgi_packet(pairs, m1=0, m2=0, size=None):
    block = uwsgi_vars(pairs)
    return bytes([m1]) + struct.pack("<H", len(block) if size is None else size) + bytes([m2]) + block


def uwsgi(name, packet, cfg=0, custom=(64, 8, 64), body=b""):
    # Raw mode: byte 0 even; limits_from gets byte0 >> 1.
    write("uwsgi_packet", name, bytes([cfg << 1, *custom, 0x80]) + packet + body)


def nginx_params(method="GET", uri="/index.php?a=1", ctype="", clen="", https="", proto="HTTP/1.1", extra=()):
    path, _, query = uri.partition("?")
    return [
        ("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ctype),
        ("CONTENT_LENGTH", clen), ("REQUEST_URI", uri), ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", proto),
        ("REQUEST_SCHEME", "https" if https else "http"), ("HTTPS", https),
        ("REMOTE_ADDR", "203.0.113.7"), ("REMOTE_PORT", "51000"), ("SERVER_PORT", "80"),
        ("SERVER_NAME", "example.com"), ("HTTP_HOST", "example.com"),
        ("HTTP_USER_AGENT", "curl/8.5.0"), ("HTTP_ACCEPT", "*/*"), *extra,
    ]


uwsgi("nginx-get", uwsgi_packet(nginx_params()))
uwsgi("nginx-post", uwsgi_packet(nginx_params("POST", "/form", "application/x-www-form-urlencoded", "7")), body=b"a=1&b=2")
uwsgi("nginx-https", uwsgi_packet(nginx_params(https="on", extra=[("HTTP_X_FORWARDED_PROTO", "https")])))
uwsgi("nginx-http10", uwsgi_packet(nginx_params(proto="HTTP/1.0")))
uwsgi("nginx-chunked-undone", uwsgi_packet(nginx_params("POST", "/up", "", "5", extra=[("HTTP_TRANSFER_ENCODING", "chunked")])), body=b"hello")
uwsgi("nginx-cookies", uwsgi_packet(nginx_params(extra=[("HTTP_COOKIE", "a=1; b=2"), ("HTTP_X_FORWARDED_FOR", "10.0.0.1, 203.0.113.7")])))
uwsgi("no-request-uri", uwsgi_packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/a/b"), ("QUERY_STRING", "x=1"), ("HTTP_HOST", "h")]))
uwsgi("no-request-uri-empty-path", uwsgi_packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", ""), ("HTTP_HOST", "h")]))
uwsgi("minimal", uwsgi_packet([("REQUEST_METHOD", "GET")]))
uwsgi("no-method", uwsgi_packet([("REQUEST_URI", "/"), ("HTTP_HOST", "h")]))
uwsgi("empty-block", uwsgi_packet([]))
uwsgi("bad-method", uwsgi_packet([("REQUEST_METHOD", "GE T"), ("REQUEST_URI", "/")]))
uwsgi("bad-content-length", uwsgi_packet([("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/"), ("CONTENT_LENGTH", "-1")]))
uwsgi("huge-content-length", uwsgi_packet([("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/"), ("CONTENT_LENGTH", "18446744073709551616")]))
uwsgi("space-in-uri", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/a b")]))
uwsgi("crlf-in-header", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/"), ("HTTP_X", "a\r\nInjected: 1")]))
uwsgi("underscore-header", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/"), ("HTTP_X_REAL_IP", "1.2.3.4")]))
uwsgi("empty-key", uwsgi_packet([("REQUEST_METHOD", "GET"), ("", "x")]))
uwsgi("wsgi-key", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/"), ("wsgi.input", "x")]))
_trunc = struct.pack("<H", 14) + b"REQUEST_METHOD" + struct.pack("<H", 10) + b"GET"
uwsgi("truncated-var", b"\x00" + struct.pack("<H", len(_trunc)) + b"\x00" + _trunc)
uwsgi("size-too-small", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/")], size=12))
uwsgi("partial", uwsgi_packet(nginx_params())[:40])
uwsgi("modifier1", uwsgi_packet([("REQUEST_METHOD", "GET")], m1=5))
uwsgi("modifier2", uwsgi_packet([("REQUEST_METHOD", "GET")], m2=1))
uwsgi("http-instead", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
uwsgi("small-limits-too-many", uwsgi_packet(nginx_params()), cfg=1)
uwsgi("small-limits-uri", uwsgi_packet([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/" + "a" * 40)]), cfg=1)
# Structured mode (byte 0 odd): bytes for `arbitrary`.
write("uwsgi_packet", "structured-a", bytes([1]) + bytes(range(0, 120, 3)))
write("uwsgi_packet", "structured-b", bytes([1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 2, 0, 2, 7, 1, 4, 0, 0, 0]))

# ------------------------------------------------------------- proxy_header
# Raw mode: [0 (even), prefix choice] + connection start.


def proxy(name, data):
    write("proxy_header", name, bytes([0, 0x80]) + data)


SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQ = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def v2(cmd, fam, body):
    return SIG + bytes([cmd, fam]) + struct.pack(">H", len(body)) + body


def v4(a):
    return ipaddress.IPv4Address(a).packed


def v6(a):
    return ipaddress.IPv6Address(a).packed


proxy("v1-tcp4", b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n" + REQ)
proxy("v1-tcp6", b"PROXY TCP6 2001:db8::1 ::1 65535 80\r\n" + REQ)
proxy("v1-tcp6-mapped", b"PROXY TCP6 ::ffff:203.0.113.7 ::ffff:192.0.2.1 1 2\r\n")
proxy("v1-unknown", b"PROXY UNKNOWN\r\n" + REQ)
proxy("v1-unknown-addrs", b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n")
proxy("v1-max-length", b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")
proxy("v1-bad-port", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n")
proxy("v1-leading-zero-port", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n")
proxy("v1-bare-lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")
proxy("v1-lowercase", b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n")
proxy("v1-double-space", b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")
proxy("v1-family-mismatch", b"PROXY TCP4 ::1 ::1 1 2\r\n")
proxy("v1-partial", b"PROXY TCP4 203.0.11")
proxy("v1-too-long", b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n")
proxy("v2-tcp4", v2(0x21, 0x11, v4("203.0.113.7") + v4("192.0.2.1") + struct.pack(">HH", 51000, 443)) + REQ)
proxy("v2-tcp6", v2(0x21, 0x21, v6("2001:db8::7") + v6("::1") + struct.pack(">HH", 1234, 80)))
proxy("v2-udp4", v2(0x21, 0x12, v4("10.0.0.1") + v4("10.0.0.2") + struct.pack(">HH", 53, 53)))
proxy("v2-local", v2(0x20, 0x00, b"") + REQ)
proxy("v2-unspec", v2(0x21, 0x00, b""))
proxy("v2-unix", v2(0x21, 0x31, b"/run/src.sock".ljust(108, b"\0") + b"/run/dst.sock".ljust(108, b"\0")))
tlvs = bytes([0x01, 0x00, 0x02]) + b"h2" + bytes([0x04, 0x00, 0x04, 1, 2, 3, 4]) + bytes([0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0])
proxy("v2-tcp4-tlvs", v2(0x21, 0x11, v4("198.51.100.1") + v4("198.51.100.2") + struct.pack(">HH", 4000, 443) + tlvs))
proxy("v2-bad-version", v2(0x11, 0x11, v4("1.2.3.4") + v4("5.6.7.8") + struct.pack(">HH", 1, 2)))
proxy("v2-bad-command", v2(0x22, 0x11, v4("1.2.3.4") + v4("5.6.7.8") + struct.pack(">HH", 1, 2)))
proxy("v2-bad-family", v2(0x21, 0x41, v4("1.2.3.4") + v4("5.6.7.8") + struct.pack(">HH", 1, 2)))
proxy("v2-short-block", v2(0x21, 0x21, v4("1.2.3.4") + v4("5.6.7.8") + struct.pack(">HH", 1, 2)))
proxy("v2-too-long", SIG + bytes([0x21, 0x11, 0x04, 0x01]) + b"\0" * 32)
proxy("v2-partial", v2(0x21, 0x11, v4("1.2.3.4") + v4("5.6.7.8") + struct.pack(">HH", 1, 2))[:20])
proxy("v2-signature-only", SIG)
proxy("no-header", REQ)
# Structured mode (byte 0 odd): bytes for `arbitrary`.
write("proxy_header", "structured-v1-v4", bytes([1, 1, 0, 10, 0, 0, 1, 0x1f, 0x90, 0, 192, 168, 0, 1, 0, 80]))
write("proxy_header", "structured-v2-v6", bytes([1, 2, 1]) + bytes(range(16)) + bytes([1, 2, 1]) + bytes(range(16, 32)) + bytes([0, 80]))

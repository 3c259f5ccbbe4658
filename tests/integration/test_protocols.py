"""The uwsgi binary protocol (--protocol uwsgi), the PROXY protocol
(--proxy-protocol), --permit-obsolete-folding and chunked trailer rules,
driven over raw sockets against the real binary. nginx and HAProxy in
front of rwsgi are in test_nginx.py and test_haproxy.py."""

import json
import os
import socket
import struct

import pytest

from support import exchange, read_until_close, wait_for


# ---------------------------------------------------------------------------
# uwsgi packets


def uwsgi_packet(variables, modifier1=0, modifier2=0):
    block = b""
    for key, value in variables:
        key = key.encode("latin-1") if isinstance(key, str) else key
        value = value.encode("latin-1") if isinstance(value, str) else value
        block += struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    return bytes([modifier1]) + struct.pack("<H", len(block)) + bytes([modifier2]) + block


def nginx_vars(method="GET", uri="/environ", body=b"", extra=()):
    """The variables nginx's uwsgi_params sends, for a request to `uri`."""
    path, _, query = uri.partition("?")
    return [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", "text/plain" if body else ""),
        ("CONTENT_LENGTH", str(len(body)) if body else ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/srv/www"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("HTTPS", ""),
        ("REMOTE_ADDR", "203.0.113.9"),
        ("REMOTE_PORT", "40123"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "example.org"),
        ("HTTP_HOST", "example.org"),
        ("HTTP_USER_AGENT", "test/1"),
    ] + list(extra)


def split_reply(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
    return lines[0], headers, body


def environ_of(reply):
    status, _, body = split_reply(reply)
    assert status == b"HTTP/1.1 200 OK", reply[:300]
    return {k: v.get("value") for k, v in json.loads(body).items()}


@pytest.fixture(scope="module")
def uwsgi_server(module_servers, tmp_path_factory):
    sock = str(tmp_path_factory.mktemp("uwsgi") / "app.sock")
    srv = module_servers.start(["--protocol", "uwsgi", "-b", "unix:" + sock, "testapp:app"], ready=None)
    srv.wait_booted(1)
    wait_for(lambda: os.path.exists(sock), message="unix socket")
    srv.unix_path = sock
    return srv


def tcp(srv):
    return (srv.host, srv.port)


def test_uwsgi_get_builds_the_environ_from_nginx_vars(uwsgi_server):
    env = environ_of(exchange(tcp(uwsgi_server), uwsgi_packet(nginx_vars(uri="/environ?a=1&b=%20"))))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["RAW_URI"] == "/environ?a=1&b=%20"
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["REMOTE_PORT"] == "40123"
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_PORT"] == "80"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["DOCUMENT_ROOT"] == "/srv/www"
    assert env["HTTP_HOST"] == "example.org"
    assert env["HTTP_USER_AGENT"] == "test/1"
    assert env["wsgi.url_scheme"] == "http"
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env


def test_uwsgi_over_a_unix_socket_and_https(uwsgi_server):
    packet = uwsgi_packet(nginx_vars(extra=[("HTTPS", "on")]))
    env = environ_of(exchange(uwsgi_server.unix_path, packet))
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"


def test_uwsgi_path_info_is_the_front_ends(uwsgi_server):
    # nginx sends PATH_INFO decoded (and after its rewrites): it is used as given.
    variables = [(k, "/path/a b" if k == "PATH_INFO" else v) for k, v in nginx_vars(uri="/path/a%20b")]
    status, _, body = split_reply(exchange(tcp(uwsgi_server), uwsgi_packet(variables)))
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"/path/a b?"


def test_uwsgi_raw_utf8_uri(uwsgi_server):
    # nginx passes a raw UTF-8 request line on as sent, as REQUEST_URI.
    uri = "/path/caf\u00e9".encode("utf-8").decode("latin-1")
    variables = [(k, uri if k in ("REQUEST_URI", "PATH_INFO") else v) for k, v in nginx_vars(uri="/x")]
    status, _, body = split_reply(exchange(tcp(uwsgi_server), uwsgi_packet(variables)))
    assert status == b"HTTP/1.1 200 OK"
    # PATH_INFO is the bytes as latin-1 (PEP 3333); the app answers in UTF-8.
    assert body == (uri + "?").encode("utf-8")


def test_uwsgi_remote_addr_without_port(uwsgi_server):
    # nginx's realip module gives an address without a port.
    variables = [(k, "" if k == "REMOTE_PORT" else v) for k, v in nginx_vars()]
    env = environ_of(exchange(tcp(uwsgi_server), uwsgi_packet(variables)))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "")
    variables = [(k, v) for k, v in nginx_vars() if k != "REMOTE_PORT"]
    env = environ_of(exchange(tcp(uwsgi_server), uwsgi_packet(variables)))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "")


def test_uwsgi_post_body_by_content_length(uwsgi_server):
    body = os.urandom(300_000)
    packet = uwsgi_packet(nginx_vars("POST", "/echo", body))
    status, headers, got = split_reply(exchange(tcp(uwsgi_server), packet + body))
    assert status == b"HTTP/1.1 200 OK"
    assert got == body
    assert headers["connection"] == "close"


def test_uwsgi_streamed_response_is_close_delimited(uwsgi_server):
    # The front end reads to the close: never chunked framing.
    status, headers, body = split_reply(exchange(tcp(uwsgi_server), uwsgi_packet(nginx_vars(uri="/stream"))))
    assert status == b"HTTP/1.1 200 OK"
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers
    assert body and b"0\r\n\r\n" not in body


def test_uwsgi_app_error_is_a_500(uwsgi_server):
    status, _, _ = split_reply(exchange(tcp(uwsgi_server), uwsgi_packet(nginx_vars(uri="/crash"))))
    assert status == b"HTTP/1.1 500 Internal Server Error"


def test_uwsgi_packet_split_into_single_bytes(uwsgi_server):
    body = b"abc"
    reply = exchange(tcp(uwsgi_server), uwsgi_packet(nginx_vars("POST", "/echo", body)) + body, piece=7)
    assert split_reply(reply)[2] == body


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "this looks like HTTP"),
        (uwsgi_packet(nginx_vars(), modifier1=5), "unsupported modifier"),
        (uwsgi_packet([("REQUEST_URI", "/")]), "no REQUEST_METHOD variable"),
        (b"\x00\x05\x00\x00\x05\x00ABC", "a variable runs past the end of the block"),
    ],
)
def test_uwsgi_malformed_packets_are_closed_with_a_log_line(uwsgi_server, data, reason):
    line = "closing a connection from 127.0.0.1:[0-9]+: " + reason
    before = uwsgi_server.count_stderr(line)
    assert exchange(tcp(uwsgi_server), data) == b""
    uwsgi_server.wait_new_stderr(line, before)
    # The worker is fine: the next request is served.
    assert environ_of(exchange(tcp(uwsgi_server), uwsgi_packet(nginx_vars())))["REQUEST_METHOD"] == "GET"


@pytest.mark.parametrize(
    "variables,status",
    [
        (nginx_vars(extra=[("CONTENT_LENGTH", "12x")]), b"400"),
        ([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/" + "a" * 5000)], b"414"),
        (nginx_vars(extra=[("HTTP_X_%d" % i, "v") for i in range(101)]), b"431"),
        (nginx_vars(extra=[("HTTP_X", "a\x01b")]), b"400"),
    ],
)
def test_uwsgi_bad_requests_get_a_status(uwsgi_server, variables, status):
    reply = exchange(tcp(uwsgi_server), uwsgi_packet(variables))
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]


def test_uwsgi_truncated_body_is_a_400(uwsgi_server):
    packet = uwsgi_packet(nginx_vars("POST", "/echo", b"x" * 10))
    with socket.create_connection(tcp(uwsgi_server), timeout=10) as s:
        s.sendall(packet + b"short")
        s.shutdown(socket.SHUT_WR)
        reply = read_until_close(s)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]


def test_uwsgi_allow_from_refuses_other_peers_but_not_unix(servers, tmp_path):
    sock = str(tmp_path / "u.sock")
    srv = servers.start(
        ["--protocol", "uwsgi", "--uwsgi-allow-from", "10.0.0.1", "--log-level", "debug", "-b", "unix:" + sock, "testapp:app"],
        ready=None,
    )
    srv.wait_booted(1)
    wait_for(lambda: os.path.exists(sock), message="unix socket")
    reply = exchange(tcp(srv), uwsgi_packet(nginx_vars()))
    assert reply.startswith(b"HTTP/1.1 403 Forbidden"), reply[:200]
    srv.wait_stderr("not in --uwsgi-allow-from")
    assert environ_of(exchange(sock, uwsgi_packet(nginx_vars())))["REMOTE_ADDR"] == "203.0.113.9"


# ---------------------------------------------------------------------------
# PROXY protocol


def proxy_v1(src, sport, dst="127.0.0.1", dport=80, family="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def proxy_v2(src, sport, dst="127.0.0.1", dport=80, command=0x21, tlvs=b""):
    addresses = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport) + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack(">H", len(addresses)) + addresses


def remote_of(reply):
    env = environ_of(reply)
    return env["REMOTE_ADDR"], env["REMOTE_PORT"]


GET_ENVIRON = b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def proxy_server(module_servers):
    srv = module_servers.start(["--proxy-protocol", "--access-logfile", "-", "testapp:app"], ready=None)
    srv.wait_booted(1)
    return srv


def test_proxy_v1_sets_remote_addr_and_port(proxy_server):
    assert remote_of(exchange(tcp(proxy_server), proxy_v1("198.51.100.4", 51000) + GET_ENVIRON)) == ("198.51.100.4", "51000")
    v6 = proxy_v1("2001:db8::4", 6000, dst="::1", family="TCP6")
    assert remote_of(exchange(tcp(proxy_server), v6 + GET_ENVIRON)) == ("2001:db8::4", "6000")
    # The access log names the client, not the proxy.
    proxy_server_log = lambda: "198.51.100.4 - -" in proxy_server.stdout()  # noqa: E731
    wait_for(proxy_server_log, message="access log line with the proxied client")


def test_proxy_v2_sets_remote_addr_and_skips_tlvs(proxy_server):
    header = proxy_v2("192.0.2.77", 2222, tlvs=b"\x04\x00\x02ab")
    assert remote_of(exchange(tcp(proxy_server), header + GET_ENVIRON)) == ("192.0.2.77", "2222")


def test_proxy_local_command_and_unknown_keep_the_socket_peer(proxy_server):
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + b"\x00\x00"
    assert remote_of(exchange(tcp(proxy_server), local + GET_ENVIRON))[0] == "127.0.0.1"
    assert remote_of(exchange(tcp(proxy_server), b"PROXY UNKNOWN\r\n" + GET_ENVIRON))[0] == "127.0.0.1"


def test_proxy_header_holds_for_every_keep_alive_request(proxy_server):
    two = GET_ENVIRON.replace(b"Connection: close\r\n", b"")
    reply = exchange(tcp(proxy_server), proxy_v1("198.51.100.8", 1234) + two + GET_ENVIRON)
    assert reply.count(b'"REMOTE_ADDR": {"type": "str", "value": "198.51.100.8"}') == 2


def test_proxy_header_sent_in_pieces(proxy_server):
    reply = exchange(tcp(proxy_server), proxy_v2("192.0.2.5", 999) + GET_ENVIRON, piece=5)
    assert remote_of(reply) == ("192.0.2.5", "999")


@pytest.mark.parametrize(
    "data,reason",
    [
        (GET_ENVIRON, "no PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n" + GET_ENVIRON, "bad port in PROXY v1 line"),
        (b"PROXY TCP4 not-an-ip 5.6.7.8 1 80\r\n" + GET_ENVIRON, "bad address in PROXY v1 line"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12) + GET_ENVIRON, "version other than 2"),
    ],
)
def test_allowed_peer_without_a_valid_header_is_closed(proxy_server, data, reason):
    line = "closing a connection from 127.0.0.1:[0-9]+: .*" + reason
    before = proxy_server.count_stderr(line)
    assert exchange(tcp(proxy_server), data) == b""
    proxy_server.wait_new_stderr(line, before)


def test_peer_outside_proxy_allow_from_is_served_plain(servers):
    srv = servers.start(["--proxy-protocol", "v1", "--proxy-allow-from", "10.0.0.0/8", "testapp:app"])
    assert remote_of(exchange(tcp(srv), GET_ENVIRON))[0] == "127.0.0.1"
    # Its PROXY line is not believed: it is not HTTP either.
    assert exchange(tcp(srv), proxy_v1("1.2.3.4", 5) + GET_ENVIRON).startswith(b"HTTP/1.1 400")


def test_proxy_protocol_with_uwsgi(servers):
    srv = servers.start(["--proxy-protocol", "v2", "--protocol", "uwsgi", "testapp:app"], ready=None)
    srv.wait_booted(1)
    variables = [(k, v) for k, v in nginx_vars() if k not in ("REMOTE_ADDR", "REMOTE_PORT")]
    reply = exchange(tcp(srv), proxy_v2("192.0.2.99", 4321) + uwsgi_packet(variables))
    assert remote_of(reply) == ("192.0.2.99", "4321")


# ---------------------------------------------------------------------------
# obs-fold and trailers


def test_obs_fold_refused_by_default_and_unfolded_when_permitted(servers):
    folded = b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Long: first\r\n \tsecond\r\nConnection: close\r\n\r\n"
    strict = servers.start(["testapp:app"])
    assert exchange(tcp(strict), folded).startswith(b"HTTP/1.1 400")
    lenient = servers.start(["--permit-obsolete-folding", "testapp:app"])
    assert environ_of(exchange(tcp(lenient), folded))["HTTP_X_LONG"] == "first second"


@pytest.mark.parametrize(
    "trailer,status",
    [
        (b"X-Checksum: abc", b"200"),
        (b"Content-Length: 5", b"400"),
        (b"Host: evil.example", b"400"),
        (b"Transfer-Encoding: chunked", b"400"),
        (b"Bad Name: x", b"400"),
        (b"X-Ctl: a\x01b", b"400"),
    ],
)
def test_chunked_trailer_rules(app_server, trailer, status):
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"
    )
    reply = exchange(tcp(app_server), raw)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
    if status == b"200":
        assert reply.endswith(b"\r\n\r\nhello")

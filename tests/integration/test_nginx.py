"""Real nginx in front of real rwsgi, with the site files shipped in
config/nginx/ (rendered by frontends.py: only the listen port, the upstream
address and the static root change).

- config/nginx/rwsgi-proxy.conf: proxy_pass over HTTP, to rwsgi on TCP and
  on a unix socket.
- config/nginx/rwsgi-uwsgi.conf: uwsgi_pass, to rwsgi --protocol uwsgi on
  TCP and on a unix socket.

Clients are curl, requests, ab and raw sockets (rawhttp), all on loopback.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests

import frontends
import rawhttp
from frontends import NGINX_PROXY_SITE, NGINX_UWSGI_SITE
from support import APPS_DIR, free_port, wait_for

sys.path.insert(0, str(APPS_DIR))
import testapp  # noqa: E402

pytestmark = pytest.mark.skipif(frontends.nginx_missing_reason() is not None, reason=str(frontends.nginx_missing_reason()))

TIMEOUT = 30  # seconds, for every client call
STATIC_TEXT = b"served by nginx from the static root, not by rwsgi\n"
STATIC_CSS = b"body { color: #123456; }\n"


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    (root / "hello.txt").write_bytes(STATIC_TEXT)
    (root / "css").mkdir()
    (root / "css" / "site.css").write_bytes(STATIC_CSS)
    return root


@pytest.fixture(scope="module")
def sock_dir():
    path = frontends.short_tmp_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Stack:
    """rwsgi plus the nginx in front of it."""

    def __init__(self, server, nginx, transport, site):
        self.server = server
        self.nginx = nginx
        self.transport = transport
        self.site = site

    def url(self, path="/"):
        return self.nginx.url(path)

    def https_url(self, path="/"):
        return self.nginx.url(path, scheme="https")

    def connect(self, timeout=TIMEOUT):
        return rawhttp.Connection(("127.0.0.1", self.nginx.port), timeout=timeout)

    def diagnostics(self):
        return "rwsgi stderr:\n%s\nnginx:\n%s" % (self.server.stderr()[-5000:], self.nginx.logs()[-5000:])


def start_rwsgi(servers, transport, sock_dir, args, uwsgi=False, workers=2):
    """rwsgi on TCP or on a unix socket; returns (server, upstream address).

    An HTTP server is probed with GET until it answers. A uwsgi one cannot
    be (it does not speak HTTP): wait for its workers to boot instead; the
    master binds the socket before it forks them.
    """
    args = ["-w", str(workers)] + (["--protocol", "uwsgi"] if uwsgi else []) + list(args)
    if transport == "tcp":
        if uwsgi:
            port = free_port()
            srv = servers.start(["-b", "127.0.0.1:%d" % port] + args, bind=None, ready=None)
            srv.address = ("127.0.0.1", port)
            srv.wait_booted(workers)
        else:
            srv = servers.start(args)
        return srv, (srv.host, srv.port)
    path = os.path.join(sock_dir, "%s-%s.sock" % ("uwsgi" if uwsgi else "http", uuid.uuid4().hex[:8]))
    if uwsgi:
        srv = servers.start(["-b", "unix:" + path] + args, bind=None, ready=None)
        srv.wait_booted(workers)
    else:
        srv = servers.start(["-b", "unix:" + path] + args, bind=None, ready=path)
    return srv, path


def make_stack(servers, fe, sock_dir, static_root, transport, site, tls=None, app="testapp:app", extra=(), transform=None):
    uwsgi = site == NGINX_UWSGI_SITE
    # --keep-alive 75: what the proxy site's comments tell users to run.
    args = list(extra) + ([] if uwsgi else ["--keep-alive", "75"]) + ["--access-logfile", "-", app]
    srv, upstream = start_rwsgi(servers, transport, sock_dir, args, uwsgi=uwsgi)
    nginx = fe.nginx(site, upstream, static_root, tls=tls, transform=transform)
    return Stack(srv, nginx, transport, site)


@pytest.fixture(scope="module", params=["tcp", "unix"])
def proxy_stack(request, module_servers, fe, sock_dir, static_root):
    return make_stack(module_servers, fe, sock_dir, static_root, request.param, NGINX_PROXY_SITE)


@pytest.fixture(scope="module", params=["tcp", "unix"])
def proxy_tls_stack(request, module_servers, fe, sock_dir, static_root, tls):
    stack = make_stack(module_servers, fe, sock_dir, static_root, request.param, NGINX_PROXY_SITE, tls=tls)
    stack.tls = tls
    return stack


@pytest.fixture(scope="module", params=["tcp", "unix"])
def uwsgi_stack(request, module_servers, fe, sock_dir, static_root):
    return make_stack(module_servers, fe, sock_dir, static_root, request.param, NGINX_UWSGI_SITE)


@pytest.fixture(scope="module", params=["tcp", "unix"])
def uwsgi_tls_stack(request, module_servers, fe, sock_dir, static_root, tls):
    stack = make_stack(module_servers, fe, sock_dir, static_root, request.param, NGINX_UWSGI_SITE, tls=tls)
    stack.tls = tls
    return stack


# ---------------------------------------------------------------------------
# helpers


def environ_of(response):
    """The app's /environ dump as {key: value} (values of str/bool/int kept,
    others replaced by their description)."""
    assert response.status_code == 200, response.text[:2000]
    described = response.json()
    return {k: d.get("value", d) for k, d in described.items()}, described


def raw_environ(stack, target, headers=(), version="HTTP/1.1"):
    """GET target through nginx from a raw socket; returns (environ dump,
    the client's local port)."""
    headers = [("Host", "127.0.0.1:%d" % stack.nginx.port)] + list(headers)
    if version == "HTTP/1.1":
        headers.append(("Connection", "close"))
    with stack.connect() as conn:
        resp = conn.request("GET", target, headers, version=version)
        local_port = conn.local_port()
    assert resp.status == 200, "%r\n%s" % (resp, stack.diagnostics())
    return json.loads(resp.body), local_port


def str_value(env, key):
    assert key in env, "%s missing from environ: %s" % (key, sorted(env))
    assert env[key]["type"] == "str", (key, env[key])
    return env[key]["value"]


def curl(*args, data=None):
    """Run curl (bounded); returns the CompletedProcess (stdout as bytes)."""
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--max-time", str(TIMEOUT)] + list(args),
        input=data,
        capture_output=True,
        timeout=TIMEOUT + 10,
    )
    assert out.returncode == 0, "curl %r failed (%d): %s" % (args, out.returncode, out.stderr.decode(errors="replace"))
    return out


def check_static(stack):
    """The /static/ location is served by nginx from the static root: exact
    bytes, nginx's own validators and cache headers, nginx's 404 for a
    missing file, and rwsgi never sees any of it."""
    marker = uuid.uuid4().hex
    resp = requests.get(stack.url("/static/hello.txt?%s" % marker), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.content == STATIC_TEXT
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "ETag" in resp.headers and "Last-Modified" in resp.headers
    assert "max-age=" in resp.headers.get("Cache-Control", "")  # from `expires`

    resp = requests.get(stack.url("/static/css/site.css?%s" % marker), timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.content == STATIC_CSS
    assert resp.headers["Content-Type"] == "text/css"

    # A conditional request gets nginx's 304.
    etag = requests.get(stack.url("/static/hello.txt"), timeout=TIMEOUT).headers["ETag"]
    resp = requests.get(stack.url("/static/hello.txt?%s" % marker), headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert resp.status_code == 304

    resp = requests.get(stack.url("/static/missing-%s.txt" % marker), timeout=TIMEOUT)
    assert resp.status_code == 404
    assert b"not found: /static/" not in resp.content  # testapp's own 404 text

    # Last, a request that does reach rwsgi. A worker logs a request right
    # after sending its response, and these requests go one after another,
    # so once this line is in the log, a line for any earlier request that
    # reached rwsgi is there too.
    resp = requests.get(stack.url("/path/seen-%s" % marker), timeout=TIMEOUT)
    assert resp.status_code == 200
    wait_for(lambda: ("seen-" + marker) in stack.server.stdout(), timeout=10, message="rwsgi's access log line")
    assert marker not in stack.server.stdout().replace("seen-" + marker, ""), stack.server.stdout()[-3000:]


def check_body_too_large(stack):
    """A request over the site's client_max_body_size gets nginx's 413
    before any body is sent."""
    limit = frontends.nginx_size(frontends.site_setting(stack.site, "client_max_body_size"))
    with stack.connect() as conn:
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (limit + 1)
        )
        resp = conn.read_response()
    assert resp.status == 413, resp
    # And one at the limit goes through.
    body = os.urandom(1024) * (limit // 1024)
    assert len(body) == limit
    resp = requests.post(stack.url("/upload"), data=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.json() == {"sha256": hashlib.sha256(body).hexdigest(), "length": limit}


def check_chunked_upload(stack):
    """A chunked request body from the client (curl, and requests with a
    generator) reaches the app whole."""
    payload = b"".join(testapp.stream_block(i, 10000) for i in range(70))  # 700 kB
    out = curl(
        "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/x-test",
        "--data-binary", "@-", stack.url("/upload"),
        data=payload,
    )
    assert json.loads(out.stdout) == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}

    pieces = [b"first;", b"x" * 70000, b";last"]
    resp = requests.post(stack.url("/echo"), data=iter(pieces), headers={"Content-Type": "text/x-gen"}, timeout=TIMEOUT)
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"  # the client really sent chunked
    assert resp.status_code == 200, resp.text[:500]
    assert resp.content == b"".join(pieces)
    assert resp.headers["Content-Type"] == "text/x-gen"


def check_streamed_responses(stack):
    total = 10 * 1024 * 1024
    got = hashlib.sha256()
    length = 0
    with requests.get(stack.url("/stream?total=%d" % total), stream=True, timeout=TIMEOUT) as resp:
        assert resp.status_code == 200
        for piece in resp.iter_content(chunk_size=65536):
            got.update(piece)
            length += len(piece)
    assert length == total
    assert got.hexdigest() == testapp.stream_sha256(total)

    # An odd total, in odd chunks.
    total = 1000003
    resp = requests.get(stack.url("/stream?total=%d&chunk=4099" % total), timeout=TIMEOUT)
    assert len(resp.content) == total
    assert resp.content == b"".join(testapp.stream_pieces(total, 4099))

    # Generators with an empty item, write(), and a file_wrapper.
    assert requests.get(stack.url("/chunked"), timeout=TIMEOUT).content == b"chunk-1;chunk-2;chunk-3"
    assert requests.get(stack.url("/write"), timeout=TIMEOUT).content == b"part1;part2;part3"
    size = 300000
    expected = b"".join(testapp.stream_block(i, 1000) for i in range(size // 1000 + 1))[:size]
    assert requests.get(stack.url("/filelike?size=%d" % size), timeout=TIMEOUT).content == expected


def check_app_error(stack):
    marker = uuid.uuid4().hex
    resp = requests.get(stack.url("/crash?marker=%s" % marker), timeout=TIMEOUT)
    assert resp.status_code == 500, resp.text[:500]
    stack.server.wait_stderr("deliberate test failure %s" % marker)
    # The stack still serves.
    assert requests.get(stack.url("/hello"), timeout=TIMEOUT).content == b"Hello, world!\n"


# ---------------------------------------------------------------------------
# proxy_pass (config/nginx/rwsgi-proxy.conf)


def test_proxy_get(proxy_stack):
    resp = requests.get(proxy_stack.url("/hello"), timeout=TIMEOUT)
    assert resp.status_code == 200, proxy_stack.diagnostics()
    assert resp.content == b"Hello, world!\n"
    assert resp.headers["Content-Length"] == "14"
    assert resp.headers["Server"].startswith("nginx")

    out = curl("-i", proxy_stack.url("/path/a/b?x=1&y=%C3%A9"))
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), out.stdout
    assert body == b"/path/a/b?x=1&y=%C3%A9"


def test_proxy_headers_reach_the_app(proxy_stack):
    resp = requests.get(
        proxy_stack.url("/environ?q=1"),
        headers={"X-Custom": "custom value", "User-Agent": "nginx-test/1.0", "X-Forwarded-For": "203.0.113.9"},
        timeout=TIMEOUT,
    )
    env, described = environ_of(resp)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "q=1"
    assert env["HTTP_X_CUSTOM"] == "custom value"
    assert env["HTTP_USER_AGENT"] == "nginx-test/1.0"
    # proxy_set_header Host $host: the host without the port.
    assert env["HTTP_HOST"] == "127.0.0.1"
    # $proxy_add_x_forwarded_for appends nginx's client to the client's list.
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.1"
    assert env["HTTP_X_FORWARDED_PROTO"] == "http"
    assert env["wsgi.url_scheme"] == "http"
    # HTTP/1.1 to the upstream, with no Connection header (keepalive).
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert "HTTP_CONNECTION" not in env
    if proxy_stack.transport == "tcp":
        assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_post_echo(proxy_stack):
    body = os.urandom(300000)
    resp = requests.post(proxy_stack.url("/echo"), data=body, headers={"Content-Type": "application/x-bin"}, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.content == body
    assert resp.headers["Content-Type"] == "application/x-bin"

    out = curl("--data-binary", "@-", "-H", "Content-Type: text/x-curl", proxy_stack.url("/echo"), data=b"curl body\n" * 5000)
    assert out.stdout == b"curl body\n" * 5000


def test_proxy_keep_alive_series(proxy_stack):
    """Ten requests on one client connection to nginx, all answered; nginx's
    access log shows them on one connection, numbered 1 to 10."""
    marker = uuid.uuid4().hex
    with requests.Session() as session:
        for i in range(10):
            if i % 3 == 0:
                resp = session.post(proxy_stack.url("/echo?%s" % marker), data=b"body %d" % i, timeout=TIMEOUT)
                assert resp.status_code == 200 and resp.content == b"body %d" % i
            else:
                resp = session.get(proxy_stack.url("/path/%s/%d" % (marker, i)), timeout=TIMEOUT)
                assert resp.status_code == 200
                assert resp.content == ("/path/%s/%d?" % (marker, i)).encode()

    def marked_lines():
        lines = [line for line in proxy_stack.nginx.access_log() if marker in line]
        return lines if len(lines) >= 10 else None

    lines = wait_for(marked_lines, timeout=10, message="10 nginx access log lines")
    # log_format conn: $connection $connection_requests "$request" $status ...
    assert len({line.split()[0] for line in lines}) == 1, lines
    assert [int(line.split()[1]) for line in lines] == list(range(1, 11)), lines
    assert all(line.split('" ')[1].startswith("200 ") for line in lines), lines


@pytest.mark.parametrize("proxy_stack", ["tcp"], indirect=True)  # a unix socket peer has no port
def test_proxy_upstream_connections_are_reused(proxy_stack):
    """keepalive in the upstream block: sequential requests reach rwsgi on
    one kept-alive connection (same REMOTE_PORT), even from new clients."""
    ports = []
    for _ in range(6):
        env, _ = environ_of(requests.get(proxy_stack.url("/environ"), timeout=TIMEOUT))
        ports.append(env["REMOTE_PORT"])
    assert len(set(ports)) == 1, ports


def test_proxy_static_served_by_nginx(proxy_stack):
    check_static(proxy_stack)


def test_proxy_forwarded_proto_https(proxy_tls_stack):
    """Over TLS nginx sends X-Forwarded-Proto: https, which rwsgi trusts from
    127.0.0.1 and from unix socket peers by default."""
    stack = proxy_tls_stack
    resp = requests.get(stack.https_url("/environ"), verify=str(stack.tls.certfile), timeout=TIMEOUT)
    env, _ = environ_of(resp)
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env["wsgi.url_scheme"] == "https"

    # A client's own X-Forwarded-Ssl: off is dropped by nginx, not passed on
    # to contradict X-Forwarded-Proto (which rwsgi would answer with 400).
    resp = requests.get(
        stack.https_url("/environ"), headers={"X-Forwarded-Ssl": "off", "X-Forwarded-Protocol": "http"},
        verify=str(stack.tls.certfile), timeout=TIMEOUT,
    )
    env, _ = environ_of(resp)
    assert env["wsgi.url_scheme"] == "https"
    assert "HTTP_X_FORWARDED_SSL" not in env and "HTTP_X_FORWARDED_PROTOCOL" not in env


def test_proxy_client_cannot_claim_https(proxy_stack):
    """Over plain HTTP, the scheme headers a client sends are replaced or
    dropped by nginx: rwsgi, which trusts nginx, still sees http."""
    for name, value in (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl")):
        resp = requests.get(proxy_stack.url("/environ"), headers={name: value}, timeout=TIMEOUT)
        env, _ = environ_of(resp)
        assert env["wsgi.url_scheme"] == "http", (name, value)
        assert env["HTTP_X_FORWARDED_PROTO"] == "http"


def test_proxy_chunked_request_body(proxy_stack):
    check_chunked_upload(proxy_stack)


def test_proxy_streamed_responses(proxy_stack):
    check_streamed_responses(proxy_stack)


def test_proxy_head(proxy_stack):
    resp = requests.head(proxy_stack.url("/hello"), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["Content-Length"] == "14"
    # The upstream connection stays usable after a HEAD.
    for _ in range(3):
        assert requests.get(proxy_stack.url("/hello"), timeout=TIMEOUT).content == b"Hello, world!\n"


def test_proxy_body_too_large(proxy_stack):
    check_body_too_large(proxy_stack)


def test_proxy_app_error(proxy_stack):
    check_app_error(proxy_stack)


# ---------------------------------------------------------------------------
# uwsgi_pass (config/nginx/rwsgi-uwsgi.conf)


def test_uwsgi_environ(uwsgi_stack):
    """The uwsgi variables nginx sends (include uwsgi_params) make the
    environ: method, path, query, the client's address and port, the
    server's name and port, the protocol, and the client's headers."""
    env, local_port = raw_environ(
        uwsgi_stack,
        "/environ/sub?a=1&b=two%20words",
        headers=[("X-Custom", "hello"), ("User-Agent", "uwsgi-test/1.0"), ("Accept", "text/plain")],
    )
    assert str_value(env, "REQUEST_METHOD") == "GET"
    assert str_value(env, "PATH_INFO") == "/environ/sub"
    assert str_value(env, "QUERY_STRING") == "a=1&b=two%20words"
    assert str_value(env, "SERVER_PROTOCOL") == "HTTP/1.1"
    assert str_value(env, "REMOTE_ADDR") == "127.0.0.1"
    assert str_value(env, "REMOTE_PORT") == str(local_port)
    assert str_value(env, "SERVER_PORT") == str(uwsgi_stack.nginx.port)
    assert str_value(env, "SERVER_NAME") == frontends.first_server_name(uwsgi_stack.nginx.site_text)
    assert str_value(env, "HTTP_X_CUSTOM") == "hello"
    assert str_value(env, "HTTP_USER_AGENT") == "uwsgi-test/1.0"
    assert str_value(env, "HTTP_ACCEPT") == "text/plain"
    # Debian's uwsgi_params sends HTTP_HOST as $host (no port); upstream
    # nginx's passes the client's Host header.
    assert str_value(env, "HTTP_HOST") in ("127.0.0.1", "127.0.0.1:%d" % uwsgi_stack.nginx.port)
    assert str_value(env, "wsgi.url_scheme") == "http"
    assert "HTTPS" not in env  # `$https if_not_empty`: not sent over plain HTTP
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in env:
            assert str_value(env, key) == ""

    assert env["wsgi.version"]["value"] == [{"type": "int", "value": 1}, {"type": "int", "value": 0}]
    assert {"read", "readline", "readlines", "__iter__"} <= set(env["wsgi.input"]["attrs"])
    assert {"write", "writelines", "flush"} <= set(env["wsgi.errors"]["attrs"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert env[key]["type"] == "bool", (key, env[key])
    assert env["wsgi.run_once"]["value"] is False
    # Every CGI-style key (no dot) holds a native str.
    for key, value in env.items():
        if "." not in key:
            assert value["type"] == "str", (key, value)

    env, _ = raw_environ(uwsgi_stack, "/environ", version="HTTP/1.0")
    assert str_value(env, "SERVER_PROTOCOL") == "HTTP/1.0"


def test_uwsgi_path_info_is_latin1(uwsgi_stack):
    """nginx sends PATH_INFO percent-decoded (bytes); the environ holds them
    as latin-1 native strings, like the HTTP listener does."""
    env, _ = raw_environ(uwsgi_stack, "/environ/caf%C3%A9/a%20b?q=caf%C3%A9")
    assert str_value(env, "PATH_INFO") == "/environ/caf\u00c3\u00a9/a b"
    assert str_value(env, "QUERY_STRING") == "q=caf%C3%A9"


def test_uwsgi_request_uri(uwsgi_stack):
    """REQUEST_URI, one of the variables `include uwsgi_params;` sends (the
    request target exactly as the client sent it), reaches the environ as
    uWSGI passes it; RAW_URI, rwsgi's and Gunicorn's name for it, too."""
    for target in ("/environ/sub?a=1&b=two%20words", "/environ/caf%C3%A9/a%20b?q=caf%C3%A9", "/environ"):
        env, _ = raw_environ(uwsgi_stack, target)
        assert str_value(env, "RAW_URI") == target
        assert str_value(env, "REQUEST_URI") == target


def test_uwsgi_post_echo_1_mib(uwsgi_stack):
    body = os.urandom(1024 * 1024)
    resp = requests.post(uwsgi_stack.url("/echo"), data=body, headers={"Content-Type": "application/x-bin"}, timeout=TIMEOUT)
    assert resp.status_code == 200, "%s\n%s" % (resp.text[:500], uwsgi_stack.diagnostics())
    assert len(resp.content) == len(body)
    assert resp.content == body
    assert resp.headers["Content-Type"] == "application/x-bin"

    # CONTENT_LENGTH and CONTENT_TYPE reach the environ (POST to /environ:
    # the app leaves the body unread).
    resp = requests.post(uwsgi_stack.url("/environ"), data=b"hello", headers={"Content-Type": "text/x-small"}, timeout=TIMEOUT)
    env, _ = environ_of(resp)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == "text/x-small"

    # curl, with its Expect: 100-continue for a large body.
    out = curl("--data-binary", "@-", "-H", "Content-Type: text/x-curl", uwsgi_stack.url("/echo"), data=body)
    assert out.stdout == body


def test_uwsgi_input_access_patterns(uwsgi_stack):
    """readline/read(n)/iteration over wsgi.input, framed by CONTENT_LENGTH."""
    body = b"line one\nline two\n\nlast line without newline"
    for kind in ("read", "read_n", "readline", "readline_n", "readlines", "iter", "mixed"):
        resp = requests.post(uwsgi_stack.url("/input/%s" % kind), data=body, timeout=TIMEOUT)
        assert resp.status_code == 200, (kind, resp.text[:500])
        expected = [p.decode("latin-1") for p in testapp.consume_input(kind, io.BytesIO(body))]
        assert resp.json()["pieces"] == expected, kind


def test_uwsgi_chunked_request_body(uwsgi_stack):
    check_chunked_upload(uwsgi_stack)


def test_uwsgi_streamed_responses(uwsgi_stack):
    check_streamed_responses(uwsgi_stack)


def test_uwsgi_head(uwsgi_stack):
    get = requests.get(uwsgi_stack.url("/hello"), timeout=TIMEOUT)
    out = curl("-I", uwsgi_stack.url("/hello"))
    head = out.stdout.decode("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in head.split("\r\n")[1:] if l)}
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == get.headers["Content-Length"] == "14"

    # A HEAD of a streamed response, then more requests on the same client
    # connection: no stray body bytes anywhere.
    with uwsgi_stack.connect() as conn:
        resp = conn.request("HEAD", "/stream?total=500000", [("Host", "x")])
        assert resp.status == 200 and resp.body == b""
        resp = conn.request("GET", "/hello", [("Host", "x")])
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        resp = conn.request("HEAD", "/status/404", [("Host", "x")])
        assert resp.status == 404 and resp.body == b""
        resp = conn.request("GET", "/path/after", [("Host", "x"), ("Connection", "close")])
        assert resp.body == b"/path/after?"


def test_uwsgi_status_and_headers(uwsgi_stack):
    """Status lines and app headers come through nginx as the app set them."""
    resp = requests.get(uwsgi_stack.url("/status/418"), timeout=TIMEOUT)
    assert resp.status_code == 418
    assert resp.headers["X-Status"] == "418"
    assert resp.content == b"status 418\n"
    resp = requests.get(uwsgi_stack.url("/status/204"), timeout=TIMEOUT)
    assert resp.status_code == 204 and resp.content == b""
    resp = requests.get(uwsgi_stack.url("/hopbyhop"), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["X-Custom"] == "kept"
    assert resp.content == b"hop-by-hop\n"


def test_uwsgi_app_error_500(uwsgi_stack):
    check_app_error(uwsgi_stack)


def test_uwsgi_static_served_by_nginx(uwsgi_stack):
    check_static(uwsgi_stack)


def test_uwsgi_https(uwsgi_tls_stack):
    """include uwsgi_params passes HTTPS=on ($https) over TLS: wsgi.url_scheme
    becomes https."""
    stack = uwsgi_tls_stack
    resp = requests.get(stack.https_url("/environ?x=1"), verify=str(stack.tls.certfile), timeout=TIMEOUT)
    env, _ = environ_of(resp)
    assert env["HTTPS"] == "on"
    assert env["REQUEST_SCHEME"] == "https"
    assert env["wsgi.url_scheme"] == "https"
    assert env["QUERY_STRING"] == "x=1"
    # And a client's X-Forwarded-Ssl: off is dropped, not passed on to
    # contradict (rwsgi answers contradicting scheme headers with 400).
    resp = requests.get(stack.https_url("/environ"), headers={"X-Forwarded-Ssl": "off"},
                        verify=str(stack.tls.certfile), timeout=TIMEOUT)
    env, _ = environ_of(resp)
    assert env["wsgi.url_scheme"] == "https"


def test_uwsgi_client_cannot_claim_https(uwsgi_stack):
    """The shipped site is plain `include uwsgi_params;`: nginx passes the
    client's own X-Forwarded-* headers on as HTTP_* variables. Under
    --protocol uwsgi the scheme comes from nginx's HTTPS variable alone, so
    they neither make a plain-HTTP request https nor get it refused."""
    for headers in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"},
                    {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"}):
        resp = requests.get(uwsgi_stack.url("/environ"), headers=headers, timeout=TIMEOUT)
        assert resp.status_code == 200, (headers, resp.status_code, resp.text[:300])
        env, _ = environ_of(resp)
        assert env["wsgi.url_scheme"] == "http", headers


def test_uwsgi_allow_from(servers, fe, sock_dir, static_root):
    """--uwsgi-allow-from: nginx on 127.0.0.1, outside the list, gets 403
    over TCP; on a unix socket it is always allowed."""
    extra = ["--uwsgi-allow-from", "10.0.0.0/8"]
    tcp = make_stack(servers, fe, sock_dir, static_root, "tcp", NGINX_UWSGI_SITE, extra=extra)
    resp = requests.get(tcp.url("/hello"), timeout=TIMEOUT)
    assert resp.status_code == 403, (resp.status_code, resp.text[:300])
    assert b"Hello" not in resp.content
    unix = make_stack(servers, fe, sock_dir, static_root, "unix", NGINX_UWSGI_SITE, extra=extra)
    resp = requests.get(unix.url("/hello"), timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.content == b"Hello, world!\n"


def test_uwsgi_many_sequential_requests(uwsgi_stack):
    with requests.Session() as session:
        for i in range(200):
            resp = session.get(uwsgi_stack.url("/path/n%d" % i), timeout=TIMEOUT)
            assert resp.status_code == 200, (i, resp.status_code, uwsgi_stack.diagnostics())
            assert resp.content == b"/path/n%d?" % i


@pytest.mark.skipif(shutil.which("ab") is None, reason="ab (apache2-utils) is not installed")
def test_uwsgi_concurrent_requests_ab(uwsgi_stack):
    """ApacheBench: 400 requests, 8 at a time, keep-alive to nginx."""
    out = subprocess.run(
        ["ab", "-q", "-k", "-s", str(TIMEOUT), "-n", "400", "-c", "8", uwsgi_stack.url("/hello")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Complete requests:      400" in out.stdout, out.stdout
    assert "Failed requests:        0" in out.stdout, out.stdout
    assert "Non-2xx responses" not in out.stdout, out.stdout


def test_uwsgi_body_too_large(uwsgi_stack):
    check_body_too_large(uwsgi_stack)


def test_uwsgi_pep3333_validator(servers, fe, sock_dir, static_root):
    """wsgiref.validate around the app (its warnings made errors): GET, POST
    and HEAD through nginx's uwsgi_pass raise nothing."""
    stack = make_stack(servers, fe, sock_dir, static_root, "unix", NGINX_UWSGI_SITE, app="testapp:validated_app")
    resp = requests.get(stack.url("/some/path"), timeout=TIMEOUT)
    assert resp.status_code == 200, "%s\n%s" % (resp.text, stack.diagnostics())
    assert resp.content == b"validated GET /some/path"
    resp = requests.post(stack.url("/p"), data=b"line1\nrest", timeout=TIMEOUT)
    assert resp.status_code == 200, "%s\n%s" % (resp.text, stack.diagnostics())
    assert resp.content == b"posted:line1\nrest"
    resp = requests.head(stack.url("/h"), timeout=TIMEOUT)
    assert resp.status_code == 200, stack.diagnostics()
    assert "Traceback" not in stack.server.stderr(), stack.server.stderr()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_behind_nginx_no_request_waits_behind_a_slow_one(servers, fe, sock_dir, static_root, transport):
    """nginx keeps its upstream connections alive and spreads requests
    over them; a busy worker hands the ones parked in it to the other, so
    fast requests do not wait behind slow ones (2 s)."""
    from test_handoff import MixedLoad
    stack = make_stack(servers, fe, sock_dir, static_root, transport, NGINX_PROXY_SITE, app="handoff_app:app")
    with MixedLoad(("127.0.0.1", stack.nginx.port), 1, 2) as load:
        time.sleep(5)
    assert not load.errors, (load.errors[:5], stack.diagnostics())
    assert len(load.latencies) > 300 and max(load.latencies) < 0.5, sorted(load.latencies)[-5:]

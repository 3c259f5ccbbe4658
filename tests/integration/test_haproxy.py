"""Real HAProxy in front of real rwsgi --proxy-protocol, with the shipped
config/haproxy/rwsgi.cfg (rendered by frontends.py: a test global section,
the bind port, the server address, and send-proxy-v2 or send-proxy).

REMOTE_ADDR / REMOTE_PORT seen by the app must be the client's address as
HAProxy saw it: the tests use client sockets whose local port they know.
"""

import json
import os
import re
import socket
import subprocess

import pytest
import requests

import frontends
import rawhttp
from support import free_port, read_until_close, wait_for

pytestmark = pytest.mark.skipif(
    frontends.haproxy_missing_reason() is not None, reason=str(frontends.haproxy_missing_reason())
)

TIMEOUT = 30  # seconds, for every client call

# (HAProxy's server keyword, rwsgi's --proxy-protocol arguments). The flag
# alone (auto) is followed by another option so that it takes no value.
VARIANTS = {
    "v2": ("send-proxy-v2", ["--proxy-protocol", "v2"]),
    "v1": ("send-proxy", ["--proxy-protocol", "v1"]),
    "auto-v2": ("send-proxy-v2", ["--proxy-protocol"]),
    "auto-v1": ("send-proxy", ["--proxy-protocol"]),
}


class Stack:
    def __init__(self, server, haproxy, variant):
        self.server = server
        self.haproxy = haproxy
        self.variant = variant

    def url(self, path="/"):
        return self.haproxy.url(path)

    def diagnostics(self):
        return "rwsgi stderr:\n%s\nhaproxy:\n%s" % (self.server.stderr()[-5000:], self.haproxy.logs()[-5000:])


def make_stack(servers, fe, variant, tls=None, workers=2):
    keyword, flags = VARIANTS[variant]
    port = free_port()
    # No readiness probe: a plain GET is not what a --proxy-protocol
    # listener expects. The master binds before it forks the workers.
    srv = servers.start(
        ["-b", "127.0.0.1:%d" % port] + flags + ["-w", str(workers), "--keep-alive", "75", "testapp:app"],
        bind=None,
        ready=None,
    )
    srv.address = ("127.0.0.1", port)
    srv.wait_booted(workers)
    haproxy = fe.haproxy(("127.0.0.1", port), send_proxy=keyword, tls=tls)
    return Stack(srv, haproxy, variant)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def stack(request, module_servers, fe):
    return make_stack(module_servers, fe, request.param)


@pytest.fixture(scope="module")
def tls_stack(module_servers, fe, tls):
    stack = make_stack(module_servers, fe, "v2", tls=tls)
    stack.tls = tls
    return stack


def environ_from(resp):
    assert resp.status == 200, resp
    return {k: d.get("value", d) for k, d in json.loads(resp.body).items()}


def client_environ(stack, target="/environ", headers=()):
    """One request on a new client connection; (environ, client's local port)."""
    with rawhttp.Connection(("127.0.0.1", stack.haproxy.port), timeout=TIMEOUT) as conn:
        resp = conn.request("GET", target, [("Host", "127.0.0.1"), ("Connection", "close")] + list(headers))
        local_port = conn.local_port()
    assert resp.status == 200, "%r\n%s" % (resp, stack.diagnostics())
    return environ_from(resp), local_port


# ---------------------------------------------------------------------------


def test_remote_addr_is_the_client(stack):
    env, local_port = client_environ(stack)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)


def test_each_client_gets_its_own_address(stack):
    """Sequential clients on new connections each see their own port: a
    server connection opened with one client's PROXY header is never used
    for another client's requests."""
    seen = []
    for _ in range(5):
        env, local_port = client_environ(stack)
        seen.append((env["REMOTE_PORT"], str(local_port)))
    assert all(got == want for got, want in seen), seen


def test_explicit_client_port(stack):
    """A client socket bound to a chosen port before it connects."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.bind(("127.0.0.1", 0))
        chosen = s.getsockname()[1]
        s.connect(("127.0.0.1", stack.haproxy.port))
        s.sendall(b"GET /environ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:500]
    env = {k: d.get("value") for k, d in json.loads(body).items()}
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(chosen)


def test_curl_local_port(stack):
    """curl reports the local port it used; the app saw that port."""
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--max-time", str(TIMEOUT), "-w", "\n%{local_ip} %{local_port}", stack.url("/environ")],
        capture_output=True, timeout=TIMEOUT + 10,
    )
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition(b"\n")
    local_ip, local_port = tail.decode().split()
    env = {k: d.get("value") for k, d in json.loads(body).items()}
    assert env["REMOTE_ADDR"] == local_ip == "127.0.0.1"
    assert env["REMOTE_PORT"] == local_port


def test_keep_alive_client(stack):
    """Several requests on one client connection: all answered, all with
    that client's address, including a POST with a body."""
    with rawhttp.Connection(("127.0.0.1", stack.haproxy.port), timeout=TIMEOUT) as conn:
        local_port = conn.local_port()
        for i in range(6):
            if i % 2:
                resp = conn.request("POST", "/echo", [("Host", "x"), ("Content-Type", "text/plain")], b"body %d" % i)
                assert resp.status == 200 and resp.body == b"body %d" % i
            else:
                env = environ_from(conn.request("GET", "/environ", [("Host", "x")]))
                assert env["REMOTE_PORT"] == str(local_port), i


def test_no_server_connection_shared_between_clients(stack):
    """A connection opened with one client's PROXY header must never carry
    another client's request (HAProxy keeps such connections private to
    their client session, whatever `http-reuse` says). Two kept-alive
    clients, interleaved, among short-lived ones, each see only their own
    port in every response."""
    for _ in range(3):
        client_environ(stack)
    a = rawhttp.Connection(("127.0.0.1", stack.haproxy.port), timeout=TIMEOUT)
    b = rawhttp.Connection(("127.0.0.1", stack.haproxy.port), timeout=TIMEOUT)
    with a, b:
        for i in range(5):
            for conn in (a, b, b, a):
                env = environ_from(conn.request("GET", "/environ?%d" % i, [("Host", "x")]))
                assert env["REMOTE_PORT"] == str(conn.local_port()), i
            client_environ(stack)


def test_large_post_and_response(stack):
    body = os.urandom(1024 * 1024)
    resp = requests.post(stack.url("/echo"), data=body, timeout=TIMEOUT)
    assert resp.status_code == 200, stack.diagnostics()
    assert resp.content == body
    resp = requests.get(stack.url("/stream?total=3000000"), timeout=TIMEOUT)
    assert resp.status_code == 200 and len(resp.content) == 3000000


def test_health_checks_pass(stack):
    """HAProxy's health checks carry a PROXY header of their own (v2 LOCAL,
    v1 UNKNOWN: no client address); rwsgi must answer them like any
    request, so the server shows as UP with a layer-7 OK."""

    def checked():
        row = stack.haproxy.server_stats("rwsgi", "app1")
        return row if row.get("check_status") not in ("", "INI", "* INI") else None

    row = wait_for(checked, timeout=20, message="a completed health check")
    assert row["status"] == "UP" and row["check_status"].lstrip("* ") == "L7OK", "%r\n%s" % (row, stack.diagnostics())


def test_client_cannot_claim_https(stack):
    """The frontend replaces X-Forwarded-Proto and drops the other scheme
    headers: a plain-HTTP client stays http."""
    for name, value in (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl")):
        env, _ = client_environ(stack, headers=[(name, value)])
        assert env["wsgi.url_scheme"] == "http", (name, value)
        assert env["HTTP_X_FORWARDED_PROTO"] == "http"


def test_tls_frontend_sets_https(tls_stack):
    resp = requests.get(tls_stack.haproxy.url("/environ", scheme="https", port=tls_stack.haproxy.tls_port),
                        verify=str(tls_stack.tls.certfile), timeout=TIMEOUT)
    assert resp.status_code == 200, tls_stack.diagnostics()
    env = {k: d.get("value") for k, d in resp.json().items()}
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env["wsgi.url_scheme"] == "https"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_body_too_large(stack):
    """The frontend's Content-Length limit: 413 from HAProxy above it, the
    request goes through at it."""
    match = re.search(r"deny_status 413 if \{ req.hdr_val\(content-length\) gt (\d+) \}", frontends.HAPROXY_CFG.read_text())
    assert match, "no body size limit in %s" % frontends.HAPROXY_CFG
    limit = int(match.group(1))
    with rawhttp.Connection(("127.0.0.1", stack.haproxy.port), timeout=TIMEOUT) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
        resp = conn.read_response()
    assert resp.status == 413, resp
    body = b"z" * limit
    resp = requests.post(stack.url("/upload"), data=body, timeout=TIMEOUT)
    assert resp.status_code == 200, stack.diagnostics()
    assert resp.json()["length"] == limit

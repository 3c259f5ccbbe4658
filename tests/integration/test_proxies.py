"""Trusted proxies: Gunicorn's secure-scheme headers set wsgi.url_scheme
only for peers in --forwarded-allow-ips (unix socket peers always)."""

import os
import shutil
import socket
import tempfile

import pytest

from support import exchange


def scheme(srv, *headers):
    raw = b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    return exchange((srv.host, srv.port), raw)


def body(response):
    assert response.startswith(b"HTTP/1.1 200"), response
    return response.split(b"\r\n\r\n", 1)[1]


@pytest.fixture(scope="module")
def default_trust(module_servers):
    return module_servers.start(["edge_app:app"])


@pytest.mark.parametrize("header", [b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: on", b"X-Forwarded-Protocol: ssl"])
def test_trusted_proxy_sets_https(default_trust, header):
    assert body(scheme(default_trust, header)) == b"https"


def test_plain_without_headers_or_with_http(default_trust):
    assert body(scheme(default_trust)) == b"http"
    assert body(scheme(default_trust, b"X-Forwarded-Proto: http")) == b"http"


def test_contradicting_scheme_headers_are_refused(default_trust):
    response = scheme(default_trust, b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off")
    assert response.startswith(b"HTTP/1.1 400 "), response


def test_untrusted_peer_cannot_claim_https(module_servers):
    srv = module_servers.start(["--forwarded-allow-ips", "10.0.0.0/8", "edge_app:app"])
    assert body(scheme(srv, b"X-Forwarded-Proto: https")) == b"http"
    # Nor can it get a 400 out of contradicting headers: they are ignored.
    assert body(scheme(srv, b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off")) == b"http"


def test_unix_socket_peers_are_trusted(module_servers):
    directory = tempfile.mkdtemp(prefix="rwsgi-", dir="/tmp")
    path = os.path.join(directory, "p.sock")
    try:
        module_servers.start(["--forwarded-allow-ips", "10.0.0.0/8", "-b", "unix:" + path, "edge_app:app"],
                             bind=None, ready=path)
        with socket.socket(socket.AF_UNIX) as u:
            u.settimeout(5)
            u.connect(path)
            u.sendall(b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-Proto: https\r\n\r\n")
            data = b""
            while True:
                chunk = u.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert body(data) == b"https"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def forwarded_for(srv):
    raw = (b"GET /forwarded-for HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"X-Forwarded-For: 1.1.1.1\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n")
    return exchange((srv.host, srv.port), raw)


@pytest.mark.parametrize("mode, want", [("drop", b"1.1.1.1"), ("refuse", None), ("dangerous", b"1.1.1.1,6.6.6.6")])
def test_header_map(module_servers, mode, want):
    srv = module_servers.start(["--header-map", mode, "edge_app:app"])
    response = forwarded_for(srv)
    if want is None:
        assert response.startswith(b"HTTP/1.1 400 "), response
    else:
        assert body(response) == want

"""wsgi.input: every read method with Content-Length and chunked bodies,
large uploads, Expect: 100-continue, and request body framing on keep-alive
connections."""

import hashlib
import io
import json
import os
import sys

import pytest
import requests

import rawhttp
from support import APPS_DIR

sys.path.insert(0, str(APPS_DIR))
import testapp  # noqa: E402  (same helpers the server-side app uses)

BODY = b"alpha\nbravo charlie\r\n\ndelta-delta-delta-delta\n\xe9\xff binary \x00 bytes\nlast line without newline"
KINDS = ["read", "read_n", "readline", "readline_n", "readlines", "iter", "mixed"]


def expected_pieces(kind, body):
    return [p.decode("latin-1") for p in testapp.consume_input(kind, io.BytesIO(body))]


def post_input(srv, kind, body, framing):
    headers = [("Connection", "close"), ("Content-Type", "application/octet-stream")]
    if framing == "content-length":
        data = rawhttp.build_request("POST", "/input/" + kind, headers, body)
    else:
        cuts = [0, 3, 20, 21, 40, len(body)]
        pieces = [body[a:b] for a, b in zip(cuts, cuts[1:])]
        headers.append(("Transfer-Encoding", "chunked"))
        data = rawhttp.build_request("POST", "/input/" + kind, headers, rawhttp.chunked_body(pieces), content_length=False)
    with srv.connect() as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200, (resp, srv.stderr()[-3000:])
    return json.loads(resp.body)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("kind", KINDS)
def test_input_method(app_server, kind, framing):
    got = post_input(app_server, kind, BODY, framing)
    assert got["types"] == ["bytes"]
    assert got["pieces"] == expected_pieces(kind, BODY)


@pytest.mark.parametrize("kind", ["read", "readline", "readlines", "iter"])
def test_input_empty_body(app_server, kind):
    got = post_input(app_server, kind, b"", "content-length")
    assert got["pieces"] == expected_pieces(kind, b"")


def test_read_without_body_does_not_block(app_server):
    # A GET without Content-Length: read() must return b"" at once.
    with app_server.connect(timeout=5) as conn:
        resp = conn.request("GET", "/input/read", [("Connection", "close")])
    assert resp.status == 200
    assert json.loads(resp.body)["pieces"] == [""]


def test_chunked_with_extensions_and_trailers(app_server):
    body = rawhttp.chunked_body([b"hello ", b"chunked ", b"world"], extensions=True, trailers=[("X-Trailer", "t")])
    data = rawhttp.build_request(
        "POST", "/echo", [("Transfer-Encoding", "chunked"), ("Connection", "close")], body, content_length=False
    )
    with app_server.connect() as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200, resp
    assert resp.body == b"hello chunked world"


def test_upload_one_mebibyte(app_server):
    payload = os.urandom(1024 * 1024)
    resp = requests.post(app_server.url("/upload"), data=payload, timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


def test_upload_one_mebibyte_chunked(app_server):
    payload = os.urandom(1024 * 1024)

    def pieces():
        for i in range(0, len(payload), 50000):
            yield payload[i : i + 50000]

    # A generator body makes requests use Transfer-Encoding: chunked.
    resp = requests.post(app_server.url("/upload"), data=pieces(), timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


def test_expect_100_continue(app_server):
    body = b"sent only after 100 Continue\n" * 10
    head = rawhttp.build_request(
        "POST",
        "/echo",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Expect", "100-continue"),
            ("Connection", "close"),
        ],
    )
    with app_server.connect(timeout=10) as conn:
        conn.send(head)
        interim = conn.read_interim()
        assert interim.status == 100, interim
        assert interim.version == "HTTP/1.1"
        conn.send(body)
        resp = conn.read_response()
    assert resp.status == 200, resp
    assert resp.body == body


def test_body_does_not_swallow_next_request(app_server):
    # A body read with read() must stop at Content-Length: the bytes after it
    # are the next pipelined request.
    first = rawhttp.build_request("POST", "/input/read", body=b"exactly-this")
    second = rawhttp.build_request("GET", "/path/next", [("Connection", "close")])
    with app_server.connect() as conn:
        conn.send(first + second)
        r1 = conn.read_response()
        r2 = conn.read_response()
    assert json.loads(r1.body)["pieces"] == ["exactly-this"]
    assert r2.status == 200 and r2.body == b"/path/next?"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_unread_body_then_next_request(app_server, framing):
    # The app ignores the body. The server must either skip it and serve the
    # next request, or say Connection: close and close.
    if framing == "content-length":
        first = rawhttp.build_request("POST", "/hello", body=b"ignored body " * 100)
    else:
        first = rawhttp.build_request(
            "POST",
            "/hello",
            [("Transfer-Encoding", "chunked")],
            rawhttp.chunked_body([b"ignored ", b"chunked body"]),
            content_length=False,
        )
    with app_server.connect() as conn:
        conn.send(first)
        r1 = conn.read_response()
        assert r1.status == 200 and r1.body == b"Hello, world!\n"
        if "close" in r1.connection_tokens():
            assert conn.wait_closed()
            return
        r2 = conn.request("GET", "/path/after", [("Connection", "close")])
    assert r2.status == 200 and r2.body == b"/path/after?"

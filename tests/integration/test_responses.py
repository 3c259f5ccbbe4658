"""Response framing, keep-alive, pipelining, streaming, file_wrapper,
write(), exc_info, close(), and the headers the server adds or drops."""

import email.utils
import hashlib
import os
import socket
import struct
import sys
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import requests

import rawhttp
from support import APPS_DIR, wait_for

sys.path.insert(0, str(APPS_DIR))
import testapp  # noqa: E402


# -- connection management ---------------------------------------------------


def test_keep_alive_http11(app_server):
    with app_server.connect() as conn:
        for i in range(5):
            resp = conn.request("GET", "/path/%d" % i)
            assert resp.status == 200, resp
            assert resp.body == b"/path/%d?" % i
            assert "close" not in resp.connection_tokens()


def test_http11_connection_close(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/hello", [("Connection", "close")])
        assert resp.body == b"Hello, world!\n"
        assert "close" in resp.connection_tokens()
        assert conn.wait_closed()


def test_http10_closes_by_default(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/hello", version="HTTP/1.0")
        assert resp.status == 200
        assert resp.body == b"Hello, world!\n"
        assert "keep-alive" not in resp.connection_tokens()
        assert conn.wait_closed()


def test_http10_keep_alive(app_server):
    with app_server.connect() as conn:
        for i in range(3):
            resp = conn.request("GET", "/path/%d" % i, [("Connection", "keep-alive")], version="HTTP/1.0")
            assert resp.status == 200, resp
            assert resp.body == b"/path/%d?" % i
            assert "keep-alive" in resp.connection_tokens(), resp
        # Without the header the connection ends after the response.
        resp = conn.request("GET", "/hello", version="HTTP/1.0")
        assert resp.body == b"Hello, world!\n"
        assert conn.wait_closed()


def test_pipelining(app_server):
    data = (
        rawhttp.build_request("GET", "/path/one")
        + rawhttp.build_request("POST", "/echo", [("Content-Type", "text/plain")], b"two-body")
        + rawhttp.build_request("GET", "/path/three", [("Connection", "close")])
    )
    with app_server.connect() as conn:
        conn.send(data)
        r1 = conn.read_response()
        r2 = conn.read_response()
        r3 = conn.read_response()
        assert conn.wait_closed()
    assert (r1.status, r1.body) == (200, b"/path/one?")
    assert (r2.status, r2.body) == (200, b"two-body")
    assert (r3.status, r3.body) == (200, b"/path/three?")



def test_pipelined_responses_keep_their_order_whatever_their_kind(app_server):
    """A small whole response is held back for the end of the worker's
    turn; a streamed one, one sent through write(), a refusal, or an
    app error pipelined behind it still come out after it, in order."""
    data = (
        rawhttp.build_request("GET", "/hello")
        + rawhttp.build_request("GET", "/chunked")
        + rawhttp.build_request("GET", "/path/two")
        + rawhttp.build_request("GET", "/write")
        + rawhttp.build_request("GET", "/path/three")
        + b"NOT A REQUEST LINE\r\n\r\n"
    )
    with app_server.connect() as conn:
        conn.send(data)
        got = [conn.read_response() for _ in range(6)]
        assert conn.wait_closed()
    assert [(r.status, r.body) for r in got[:5]] == [
        (200, b"Hello, world!\n"),
        (200, b"chunk-1;chunk-2;chunk-3"),
        (200, b"/path/two?"),
        (200, b"part1;part2;part3"),
        (200, b"/path/three?"),
    ]
    assert got[5].status == 400
    # An app error ends the connection after its 500, and the response
    # held before it still comes first.
    with app_server.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/hello") + rawhttp.build_request("GET", "/crash?marker=pipelined"))
        first, second = conn.read_response(), conn.read_response()
        assert conn.wait_closed()
    assert (first.status, first.body, second.status) == (200, b"Hello, world!\n", 500)


def test_quick_response_does_not_wait_for_another_clients_slow_request(app_server):
    """Two requests ready in the same turn, a quick one then a slow one:
    the quick response, held back for the end of the turn, goes out while
    the slow request still runs, not after it."""
    with app_server.connect() as busy, app_server.connect() as quick, app_server.connect() as slow:
        time.sleep(0.1)  # all three accepted
        busy.send(rawhttp.build_request("GET", "/pid?sleep=0.6"))
        time.sleep(0.2)  # the worker is inside the app; the next two queue up
        quick.send(rawhttp.build_request("GET", "/hello"))
        time.sleep(0.05)
        slow.send(rawhttp.build_request("GET", "/pid?sleep=2"))
        quick_resp = quick.read_response()
        quick_at = time.monotonic()
        slow_resp = slow.read_response()
        slow_at = time.monotonic()
        assert busy.read_response().status == 200
    assert (quick_resp.status, quick_resp.body) == (200, b"Hello, world!\n")
    assert slow_resp.status == 200
    # The slow request sleeps 2 s after the quick one was answered.
    assert slow_at - quick_at > 1.0, (quick_at, slow_at)



def test_early_response_reaches_the_client_before_its_body_is_drained(app_server):
    """An app that answers without reading the request body (an early 401
    or 413, a redirect): the response goes out before the server waits to
    drain the body, so a client that sends the rest only once it has the
    response keeps its connection."""
    rest = b"x" * 99990
    with app_server.connect() as conn:
        conn.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        first = conn.read_response()
        conn.send(rest + rawhttp.build_request("GET", "/path/next"))
        second = conn.read_response()
    assert (first.status, first.body) == (200, b"Hello, world!\n")
    assert (second.status, second.body) == (200, b"/path/next?")


# -- framing -------------------------------------------------------------------


def test_one_item_list_gets_content_length(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/hello")
    assert resp.header("Content-Length") == "14"
    assert not resp.chunked


def test_chunked_response_http11(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/chunked")
        assert resp.status == 200
        assert resp.header("Transfer-Encoding", "").lower() == "chunked"
        assert not resp.has_header("Content-Length")
        assert resp.body == b"chunk-1;chunk-2;chunk-3"
        # The connection is still usable after a chunked body.
        again = conn.request("GET", "/path/after-chunked", [("Connection", "close")])
        assert again.body == b"/path/after-chunked?"


def test_close_delimited_response_http10(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/chunked", version="HTTP/1.0")
        assert resp.status == 200
        assert "chunked" not in resp.header("Transfer-Encoding", "").lower()
        assert resp.body == b"chunk-1;chunk-2;chunk-3"
        assert conn.wait_closed()


def test_head_has_headers_but_no_body(app_server):
    with app_server.connect() as conn:
        head = conn.request("HEAD", "/hello")
        assert head.status == 200
        assert head.body == b""
        assert head.header("Content-Type") == "text/plain"
        assert head.header("Content-Length") == "14"
        # HEAD of a streamed response: no body bytes either.
        head2 = conn.request("HEAD", "/chunked")
        assert head2.status == 200
        assert head2.body == b""
        # Any stray body bytes would corrupt this next response.
        get = conn.request("GET", "/hello", [("Connection", "close")])
        assert get.body == b"Hello, world!\n"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(app_server, code):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/status/%d" % code)
        assert resp.status == code
        assert resp.header("X-Status") == str(code)
        assert not resp.has_header("Transfer-Encoding")
        if code == 204:
            assert not resp.has_header("Content-Length")
        nxt = conn.request("GET", "/path/next", [("Connection", "close")])
        assert nxt.status == 200 and nxt.body == b"/path/next?"


def test_streamed_download_10_mib(app_server):
    total = 10 * 1024 * 1024
    got = hashlib.sha256()
    length = 0
    with requests.get(app_server.url("/stream"), stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        for piece in resp.iter_content(chunk_size=65536):
            got.update(piece)
            length += len(piece)
    assert length == total
    assert got.hexdigest() == testapp.stream_sha256(total)


@pytest.mark.parametrize("chunk", [10007, 65536, 70001])
def test_a_client_that_stops_reading_still_gets_every_byte_in_order(app_server, chunk):
    # 8 MiB is more than loopback socket buffers hold, so they fill while
    # the client does not read: pieces the
    # socket cannot take at once are kept aside and sent, in order, once it
    # drains (small pieces are first offered without waiting, large ones
    # are sent waiting), then the next request on the connection is served.
    total = 8 * 1024 * 1024 + 5
    with app_server.connect(timeout=30) as conn:
        conn.send(rawhttp.build_request("GET", "/stream?total=%d&chunk=%d" % (total, chunk)))
        time.sleep(0.5)
        resp = conn.read_response()
        assert resp.status == 200 and resp.chunked
        assert len(resp.body) == total
        assert hashlib.sha256(resp.body).hexdigest() == testapp.stream_sha256(total, chunk)
        nxt = conn.request("GET", "/hello")
        assert (nxt.status, nxt.body) == (200, b"Hello, world!\n")


# -- wsgi.file_wrapper --------------------------------------------------------------


@pytest.fixture(scope="module")
def served_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    data = os.urandom(300 * 1024 + 7)
    path.write_bytes(data)
    return path, data


def test_file_wrapper_with_content_length(app_server, served_file):
    path, data = served_file
    resp = requests.get(app_server.url("/file?cl=1&path=" + quote(str(path))), timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.content == data


def test_file_wrapper_without_content_length(app_server, served_file):
    path, data = served_file
    resp = requests.get(app_server.url("/file?cl=0&path=" + quote(str(path))), timeout=30)
    assert resp.status_code == 200
    assert resp.content == data


def test_file_wrapper_http10(app_server, served_file):
    path, data = served_file
    with app_server.connect() as conn:
        resp = conn.request("GET", "/file?cl=0&path=" + quote(str(path)), version="HTTP/1.0")
    assert resp.status == 200
    assert resp.body == data


def test_file_wrapper_keep_alive(app_server, served_file):
    path, data = served_file
    with app_server.connect() as conn:
        for cl in ("1", "0"):
            resp = conn.request("GET", "/file?cl=%s&path=%s" % (cl, quote(str(path))))
            assert resp.status == 200
            assert resp.body == data
        resp = conn.request("GET", "/hello", [("Connection", "close")])
        assert resp.body == b"Hello, world!\n"


def test_file_wrapper_non_file_object(app_server):
    size = 100000
    expected = b"".join(testapp.stream_block(i, 1000) for i in range(size // 1000 + 1))[:size]
    resp = requests.get(app_server.url("/filelike?size=%d" % size), timeout=30)
    assert resp.status_code == 200
    assert resp.content == expected


# -- start_response ------------------------------------------------------------


def test_write_callable(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/write")
        assert resp.status == 200
        assert resp.body == b"part1;part2;part3"
        again = conn.request("GET", "/hello", [("Connection", "close")])
        assert again.body == b"Hello, world!\n"


def test_exc_info_before_headers_sent(app_server):
    resp = app_server.get("/excinfo")
    assert resp.status == 503, resp
    assert resp.body == b"recovered"
    assert resp.header("X-Second") == "yes"
    assert not resp.has_header("X-First")


def test_start_response_twice_without_exc_info_is_an_error(app_server):
    resp = app_server.get("/double_start")
    assert resp.status == 500, resp
    assert b"should not be sent" not in resp.body


# -- close() on the response iterable ---------------------------------------------------


def close_entries(close_log, rid):
    if not close_log.exists():
        return []
    return [line for line in close_log.read_text().splitlines() if line.split(" ", 1)[0] == rid]


def wait_close_entry(close_log, rid, timeout=10.0):
    entries = wait_for(lambda: close_entries(close_log, rid), timeout, message="close() of request %s" % rid)
    time.sleep(0.1)
    entries = close_entries(close_log, rid)
    assert len(entries) == 1, "close() called %d times: %r" % (len(entries), entries)
    return entries[0]


def test_close_called_after_normal_response(app_server, close_log):
    rid = uuid.uuid4().hex
    resp = app_server.get("/close/normal?id=" + rid)
    assert resp.status == 200
    assert resp.body == b"item-1;item-2;"
    assert wait_close_entry(close_log, rid).endswith("exhausted=True")


def test_close_called_for_head(app_server, close_log):
    rid = uuid.uuid4().hex
    resp = app_server.request("HEAD", "/close/normal?id=" + rid)
    assert resp.status == 200 and resp.body == b""
    wait_close_entry(close_log, rid)


def test_close_called_when_first_item_raises(app_server, close_log):
    rid = uuid.uuid4().hex
    resp = app_server.get("/close/error_first?id=" + rid)
    assert resp.status == 500
    wait_close_entry(close_log, rid)
    assert app_server.get("/hello").status == 200


def test_close_called_when_iteration_fails_midway(app_server, close_log):
    rid = uuid.uuid4().hex
    with app_server.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/close/error_later?id=" + rid))
        # Headers and the first item were sent before the error: the response
        # must end abruptly (connection closed, body incomplete), never look
        # complete.
        with pytest.raises(rawhttp.ProtocolError):
            conn.read_response()
    wait_close_entry(close_log, rid)
    assert app_server.get("/hello").status == 200


def test_close_called_when_client_disconnects(app_server, close_log):
    rid = uuid.uuid4().hex
    conn = app_server.connect()
    try:
        conn.send(rawhttp.build_request("GET", "/close/disconnect?id=" + rid))
        conn.read_head()
        received = 0
        while received < 256 * 1024:
            data = conn.sock.recv(65536)
            assert data, "server closed the connection early"
            received += len(data)
        # Abortive close (RST) while the app is still producing data.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        conn.close()
    entry = wait_close_entry(close_log, rid, timeout=20)
    assert entry.endswith("exhausted=False"), entry
    # The worker survives and keeps serving.
    assert app_server.get("/hello").status == 200


# -- headers added and removed by the server ------------------------------------------------


def test_date_and_server_headers(app_server):
    resp = app_server.get("/hello")
    assert resp.header("Server", "").lower().startswith("rwsgi"), resp.headers
    date = resp.header("Date")
    assert date and date.endswith(" GMT"), resp.headers
    when = email.utils.parsedate_to_datetime(date)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60
    assert len(resp.header_values("Date")) == 1
    assert len(resp.header_values("Server")) == 1


def test_hop_by_hop_headers_from_app_are_dropped(app_server):
    with app_server.connect() as conn:
        resp = conn.request("GET", "/hopbyhop")
        assert resp.status == 200
        assert resp.header("X-Custom") == "kept"
        assert "timeout=999" not in (resp.header("Keep-Alive") or "")
        assert not resp.has_header("Proxy-Authenticate")
        assert not resp.has_header("Upgrade")
        assert resp.body == b"hop-by-hop\n"
        again = conn.request("GET", "/hello", [("Connection", "close")])
        assert again.body == b"Hello, world!\n"


def test_crlf_in_header_value_is_rejected(app_server):
    resp = app_server.get("/badheader")
    assert resp.status == 500, resp
    assert not resp.has_header("Injected")
    assert b"Injected" not in resp.head_bytes
    assert b"must not be sent" not in resp.body

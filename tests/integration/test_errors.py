"""Application errors and malformed requests."""

import uuid

import pytest

import rawhttp


@pytest.fixture(scope="module")
def limited_server(module_servers):
    """A server with small, explicit request limits."""
    return module_servers.start(
        [
            "--limit-request-line",
            "200",
            "--limit-request-fields",
            "10",
            "--limit-request-field_size",
            "500",
            "testapp:app",
        ]
    )


def send_and_expect(srv, data, status):
    resp, closed = rawhttp.send_raw(srv.address, data)
    assert resp.status == status, resp
    assert closed, "the server kept the connection open after a %d" % status
    # The server is still healthy for the next client.
    assert srv.get("/hello").status == 200
    return resp


def test_app_exception_gives_500_and_logs_traceback(app_server):
    before = int(app_server.get("/pid").body)
    marker = uuid.uuid4().hex
    with app_server.connect() as conn:
        resp = conn.request("GET", "/crash?marker=" + marker)
        assert resp.status == 500, resp
        assert marker.encode() not in resp.body  # no traceback leak to the client
        assert conn.wait_closed()
    app_server.wait_stderr(r"RuntimeError: deliberate test failure " + marker)
    log = app_server.stderr()
    assert "Traceback (most recent call last)" in log
    # The same worker keeps serving.
    after = app_server.get("/pid")
    assert after.status == 200
    assert int(after.body) == before


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nThis line has no colon\r\n\r\n",
    ],
    ids=["no-spaces", "bad-protocol", "bad-header-line"],
)
def test_malformed_request_gives_400(app_server, data):
    send_and_expect(app_server, data, 400)


def test_request_line_too_long_default_limit(app_server):
    data = b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    send_and_expect(app_server, data, 414)


def test_too_many_headers_default_limit(app_server):
    headers = [("X-Header-%d" % i, "v") for i in range(110)]
    send_and_expect(app_server, rawhttp.build_request("GET", "/hello", headers), 431)


def test_header_too_large_default_limit(app_server):
    data = rawhttp.build_request("GET", "/hello", [("X-Big", "b" * 9000)])
    send_and_expect(app_server, data, 431)


def test_invalid_chunk_size_gives_400(app_server):
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n"
    )
    send_and_expect(app_server, data, 400)


def test_limit_request_line_option(limited_server):
    ok = limited_server.get("/path/" + "a" * 120)
    assert ok.status == 200
    data = b"GET /path/" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    send_and_expect(limited_server, data, 414)


def test_limit_request_fields_option(limited_server):
    ok = limited_server.get("/hello", headers=[("X-H%d" % i, "v") for i in range(6)])
    assert ok.status == 200
    data = rawhttp.build_request("GET", "/hello", [("X-H%d" % i, "v") for i in range(20)])
    send_and_expect(limited_server, data, 431)


def test_limit_request_field_size_option(limited_server):
    ok = limited_server.get("/hello", headers=[("X-Medium", "m" * 300)])
    assert ok.status == 200
    data = rawhttp.build_request("GET", "/hello", [("X-Big", "b" * 1000)])
    send_and_expect(limited_server, data, 431)

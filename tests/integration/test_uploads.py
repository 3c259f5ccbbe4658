"""Request bodies stream in bounded memory: a worker reading an upload of
any size, in any framing and any read style, holds a few buffers of it,
not the body (the peak resident memory of the worker is measured from
/proc around each upload). And --limit-request-body."""

import functools
import hashlib
import json
import socket
import struct

import pytest

import rawhttp

MIB = 1 << 20
UPLOAD = 128 * MIB
# Peak resident memory a worker may gain while an upload of UPLOAD bytes is
# read: its buffers and the app's pieces, nothing near the body's size.
GROWTH_BOUND = 4 * MIB


@functools.lru_cache(maxsize=None)
def block(i):
    """1 MiB of 100-byte lines (readline and iteration see lines)."""
    return b"".join(b"%09d %s\n" % (i * 10486 + n, b"x" * 89) for n in range(10486))[:MIB]


def body_blocks(total):
    return (block(i) for i in range(total // MIB))


@functools.lru_cache(maxsize=None)
def expected(total):
    digest = hashlib.sha256()
    for b in body_blocks(total):
        digest.update(b)
    return (("length", total), ("sha256", digest.hexdigest()))


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def read_reply(sock):
    """Everything the server sends until it closes: (head, body)."""
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply[:500]
    return head, body


def upload(address, style, framing, total, expect_continue=False):
    """Send `total` bytes to /style; the parsed JSON answer."""
    headers = [("Host", "t"), ("Connection", "close")]
    if framing == "length":
        headers.append(("Content-Length", str(total)))
    else:
        headers.append(("Transfer-Encoding", "chunked"))
    if expect_continue:
        headers.append(("Expect", "100-continue"))
    head = "POST /%s HTTP/1.1\r\n%s\r\n\r\n" % (style, "\r\n".join("%s: %s" % h for h in headers))
    with socket.create_connection(address, timeout=60) as s:
        s.sendall(head.encode())
        if expect_continue:
            assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        for b in body_blocks(total):
            s.sendall(b"%x\r\n%s\r\n" % (len(b), b) if framing == "chunked" else b)
        if framing == "chunked":
            s.sendall(b"0\r\n\r\n")
        return json.loads(read_reply(s)[1])


@pytest.fixture(scope="module", params=["1", "2"], ids=["threads1", "threads2"])
def upload_server(request, module_servers):
    srv = module_servers.start(["-w", "1", "--threads", request.param, "upload_app:app"])
    (worker,) = srv.wait_booted(1)
    return srv, worker


@pytest.mark.parametrize("style", ["read8k", "read64k", "readline", "iter"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_upload_is_read_in_bounded_memory(upload_server, style, framing):
    srv, worker = upload_server
    idle = status_kib(worker, "VmRSS")
    reset_peak(worker)
    assert upload((srv.host, srv.port), style, framing, UPLOAD) == dict(expected(UPLOAD))
    growth = (status_kib(worker, "VmHWM") - idle) * 1024
    print("%s %s: peak RSS +%.1f MiB for a %d MiB body" % (style, framing, growth / MIB, UPLOAD // MIB))
    assert growth < GROWTH_BOUND, "peak RSS grew by %.0f MiB" % (growth / MIB)


def test_an_upload_after_100_continue_is_read_in_bounded_memory(upload_server):
    srv, worker = upload_server
    idle = status_kib(worker, "VmRSS")
    reset_peak(worker)
    assert upload((srv.host, srv.port), "read8k", "length", UPLOAD, expect_continue=True) == dict(expected(UPLOAD))
    assert (status_kib(worker, "VmHWM") - idle) * 1024 < GROWTH_BOUND


def uwsgi_packet(variables):
    block_ = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in variables.items())
    )
    return struct.pack("<BHB", 0, len(block_), 0) + block_


def uwsgi_post(sock, path, total):
    """POST `total` body bytes to `path` over the uwsgi protocol; the reply."""
    packet = uwsgi_packet({
        "REQUEST_METHOD": "POST", "REQUEST_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": str(total), "HTTP_HOST": "t",
    })
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(sock)
        s.sendall(packet)
        for b in body_blocks(total):
            s.sendall(b)
        return json.loads(read_reply(s)[1])


def test_a_uwsgi_upload_is_read_in_bounded_memory(servers, tmp_path):
    sock = str(tmp_path / "u.sock")
    srv = servers.start(["-w", "1", "--protocol", "uwsgi", "-b", "unix:" + sock, "upload_app:app"], bind=None, ready=None)
    (worker,) = srv.wait_booted(1)
    # A first request: the worker has loaded the app before it is measured.
    assert uwsgi_post(sock, "/read8k", MIB) == dict(expected(MIB))
    idle = status_kib(worker, "VmRSS")
    reset_peak(worker)
    assert uwsgi_post(sock, "/read8k", UPLOAD) == dict(expected(UPLOAD))
    assert (status_kib(worker, "VmHWM") - idle) * 1024 < GROWTH_BOUND


# -- --limit-request-body ------------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_the_app(servers):
    srv = servers.start(["--limit-request-body", "1000", "upload_app:app"])
    resp = srv.request("POST", "/read8k", body=b"x" * 1000)
    assert resp.status == 200 and json.loads(resp.body)["length"] == 1000, resp
    resp = srv.request("POST", "/read8k", body=b"x" * 1001)
    assert resp.status == 413, resp
    assert "close" in resp.connection_tokens()


def test_a_chunked_body_that_runs_past_the_limit_is_cut(servers):
    srv = servers.start(["--limit-request-body", "1000", "upload_app:app"])
    te = [("Transfer-Encoding", "chunked")]
    ok = srv.request("POST", "/read8k", headers=te, body=rawhttp.chunked_body([b"x" * 600, b"y" * 400]), content_length=False)
    assert ok.status == 200 and json.loads(ok.body)["length"] == 1000, ok
    over = srv.request("POST", "/read8k", headers=te, body=rawhttp.chunked_body([b"x" * 600, b"y" * 401]), content_length=False)
    assert over.status == 413, over

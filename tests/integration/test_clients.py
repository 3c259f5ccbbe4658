"""Real HTTP clients against a real rwsgi: ApacheBench (HTTP/1.0, with and
without keep-alive), curl and Python `requests`. These clients frame
requests, reuse connections and read responses their own way; each test
checks what the client itself reports (ab's counters, curl's connection
reuse, urllib3's connection count) besides the bytes that came back."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support import APPS_DIR

sys.path.insert(0, str(APPS_DIR))
import testapp  # noqa: E402  (the same helpers the server-side app uses)

AB = shutil.which("ab")
CURL = shutil.which("curl")
needs_ab = pytest.mark.skipif(AB is None, reason="ab (apache2-utils) is not installed")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture(scope="module")
def srv(module_servers):
    # Two workers, as in production. A generous --keep-alive so that a slow
    # test machine cannot turn a reused connection into a new one.
    return module_servers.start(["-w", "2", "--keep-alive", "10", "testapp:app"])


# ---------------------------------------------------------------------------
# ApacheBench: an HTTP/1.0 client. With -k it sends `Connection: Keep-Alive`
# and reuses a connection only if the response says `Connection: keep-alive`
# and has a Content-Length; it counts a request as failed when the
# connection breaks or the body length differs from the first response's.


def run_ab(args, timeout=120):
    out = subprocess.run(
        [AB, "-s", "20", "-q"] + args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    report = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^([A-Za-z][A-Za-z0-9 -]*?):\s+(\S.*)$", line)
        if m:
            report.setdefault(m.group(1), m.group(2).strip())
    text = "ab exited %d\nstdout:\n%s\nstderr:\n%s" % (out.returncode, out.stdout, out.stderr)
    assert out.returncode == 0, text
    return report, text


def ab_int(report, key, text):
    assert key in report, "no %r line in ab's report:\n%s" % (key, text)
    return int(report[key].split()[0])


@needs_ab
def test_ab_keep_alive_http10(srv):
    n = 2000
    report, text = run_ab(["-k", "-n", str(n), "-c", "8", srv.url("/hello")])
    assert ab_int(report, "Complete requests", text) == n, text
    assert ab_int(report, "Failed requests", text) == 0, text
    assert "Non-2xx responses" not in report, text
    # Every request went over a kept-alive connection: rwsgi answered the
    # HTTP/1.0 keep-alive requests with `Connection: keep-alive` and a
    # Content-Length it computed itself (/hello gives none).
    assert ab_int(report, "Keep-Alive requests", text) == n, text
    assert report.get("Document Length") == "14 bytes", text
    assert ab_int(report, "HTML transferred", text) == 14 * n, text


@needs_ab
def test_ab_without_keep_alive(srv):
    # Plain HTTP/1.0: ab waits for the server to close each connection, so
    # a server that kept them open would make every request time out.
    n = 1000
    report, text = run_ab(["-n", str(n), "-c", "8", srv.url("/path/ab?x=1")])
    assert ab_int(report, "Complete requests", text) == n, text
    assert ab_int(report, "Failed requests", text) == 0, text
    assert "Non-2xx responses" not in report, text
    assert ab_int(report, "HTML transferred", text) == len(b"/path/ab?x=1") * n, text


@needs_ab
def test_ab_keep_alive_post_echo(srv, tmp_path):
    n = 300
    payload = os.urandom(100_000)
    body = tmp_path / "post.bin"
    body.write_bytes(payload)
    report, text = run_ab(
        ["-k", "-n", str(n), "-c", "4", "-p", str(body), "-T", "application/x-rwsgi-test", srv.url("/echo")]
    )
    assert ab_int(report, "Complete requests", text) == n, text
    assert ab_int(report, "Failed requests", text) == 0, text
    assert "Non-2xx responses" not in report, text
    # The body was read in full each time, so the connection stayed usable.
    assert ab_int(report, "Keep-Alive requests", text) == n, text
    # ab's "Total body sent" counts the request heads too (a few hundred bytes).
    sent = ab_int(report, "Total body sent", text)
    assert n * len(payload) <= sent < n * (len(payload) + 2048), text
    assert report.get("Document Length") == "%d bytes" % len(payload), text
    assert ab_int(report, "HTML transferred", text) == n * len(payload), text


@needs_ab
def test_ab_keep_alive_with_a_body_of_unknown_length(srv):
    # A generator response has no length; an HTTP/1.0 client cannot take
    # chunked encoding, so rwsgi must end the body by closing: ab sees the
    # full body on every request and no kept-alive connection.
    n = 200
    total = 100_000
    report, text = run_ab(["-k", "-n", str(n), "-c", "4", srv.url("/stream?total=%d" % total)])
    assert ab_int(report, "Complete requests", text) == n, text
    assert ab_int(report, "Failed requests", text) == 0, text
    assert "Non-2xx responses" not in report, text
    assert ab_int(report, "Keep-Alive requests", text) == 0, text
    assert report.get("Document Length") == "%d bytes" % total, text


# ---------------------------------------------------------------------------
# curl


def run_curl(args, input=None, timeout=60):
    out = subprocess.run(
        [CURL, "-sS", "--max-time", "30"] + args,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    assert out.returncode == 0, "curl exited %d: %s" % (out.returncode, out.stderr.decode("utf-8", "replace"))
    return out.stdout, out.stderr.decode("utf-8", "replace")


# --write-out after each transfer: new connections made, and the status.
WRITE_OUT = "\n@@connects=%{num_connects} code=%{http_code}@@\n"
WRITE_OUT_RE = re.compile(rb"@@connects=(\d+) code=(\d+)@@")
REUSE_RE = re.compile(r"Re-?using existing .*connection", re.I)


@needs_curl
def test_curl_http10(srv):
    out, err = run_curl(["-v", "--http1.0", srv.url("/hello")])
    assert out == b"Hello, world!\n"
    assert re.search(r"^> GET /hello HTTP/1\.0\r?$", err, re.M), err
    assert re.search(r"^< HTTP/1\.[01] 200 ", err, re.M), err
    # No keep-alive asked for: the server closes, with a length or not.
    assert re.search(r"^< Connection: close\r?$", err, re.M | re.I), err


@needs_curl
def test_curl_http10_keep_alive_reuses_the_connection(srv):
    out, err = run_curl(
        ["-v", "--http1.0", "-H", "Connection: keep-alive", "-w", WRITE_OUT, srv.url("/hello"), srv.url("/path/two")]
    )
    assert WRITE_OUT_RE.findall(out) == [(b"1", b"200"), (b"0", b"200")], (out, err)
    assert b"Hello, world!\n" in out and b"/path/two?" in out, out
    assert REUSE_RE.search(err), err
    assert re.search(r"^< Connection: keep-alive\r?$", err, re.M | re.I), err


@needs_curl
def test_curl_http11_reuses_one_connection_for_two_urls(srv):
    out, err = run_curl(["-v", "--http1.1", "-w", WRITE_OUT, srv.url("/hello"), srv.url("/path/second?q=2")])
    # The second transfer made no new connection.
    assert WRITE_OUT_RE.findall(out) == [(b"1", b"200"), (b"0", b"200")], (out, err)
    assert b"Hello, world!\n" in out and b"/path/second?q=2" in out, out
    assert REUSE_RE.search(err), err


@needs_curl
def test_curl_chunked_upload_from_stdin(srv):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    out, err = run_curl(
        ["-v", "-T", "-", "-H", "Content-Type: application/octet-stream", srv.url("/upload")], input=payload
    )
    # Reading stdin, curl does not know the size: it must have sent chunked.
    assert re.search(r"^> Transfer-Encoding: chunked\r?$", err, re.M | re.I), err
    assert re.search(r"^< HTTP/1\.1 200 ", err, re.M), err
    assert json.loads(out) == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


@needs_curl
def test_curl_data_binary_file_5_mib_echoed(srv, tmp_path):
    payload = os.urandom(5 * 1024 * 1024)
    src = tmp_path / "upload.bin"
    src.write_bytes(payload)
    dst = tmp_path / "echoed.bin"
    out, err = run_curl(
        [
            "--data-binary", "@%s" % src,
            "-H", "Content-Type: application/octet-stream",
            "-o", str(dst),
            "-w", "%{http_code} %{size_download}",
            srv.url("/echo"),
        ]
    )
    assert out == b"200 %d" % len(payload), err
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()


# ---------------------------------------------------------------------------
# Python requests (urllib3 underneath)


def pool_counts(session, url):
    """(requests sent, connections opened) by the urllib3 pools behind
    session's adapter for url, all pools added up."""
    pools = session.get_adapter(url).poolmanager.pools
    found = [pools[key] for key in pools.keys()]
    assert found, "no connection pool"
    return sum(p.num_requests for p in found), sum(p.num_connections for p in found)


def test_requests_session_keeps_one_connection_for_100_requests(srv):
    ports = set()
    with requests.Session() as session:
        for i in range(100):
            kind = i % 3
            if kind == 0:
                resp = session.get(srv.url("/environ"), timeout=10)
                assert resp.status_code == 200, resp.text
                ports.add(resp.json()["REMOTE_PORT"]["value"])
            elif kind == 1:
                body = b"request %d " % i * (i + 1)
                resp = session.post(srv.url("/echo"), data=body, headers={"Content-Type": "text/x-n"}, timeout=10)
                assert resp.status_code == 200
                assert resp.content == body
                assert resp.headers["Content-Type"] == "text/x-n"
            else:
                resp = session.get(srv.url("/path/%d" % i), params={"i": i}, timeout=10)
                assert resp.status_code == 200
                assert resp.content == b"/path/%d?i=%d" % (i, i)
            assert "close" not in resp.headers.get("Connection", "").lower(), resp.headers
        assert pool_counts(session, srv.url("/")) == (100, 1)
    # The server saw every request come from the same client port.
    assert len(ports) == 1, ports


def test_requests_streamed_download_then_reuse(srv):
    total = 48 * 1024 * 1024 + 12345
    chunk = 100_000  # not a multiple of iter_content's size
    url = srv.url("/stream?total=%d&chunk=%d" % (total, chunk))
    with requests.Session() as session:
        got = hashlib.sha256()
        length = 0
        pieces = 0
        with session.get(url, stream=True, timeout=30) as resp:
            assert resp.status_code == 200
            assert resp.headers.get("Transfer-Encoding") == "chunked"
            for piece in resp.iter_content(chunk_size=65536):
                got.update(piece)
                length += len(piece)
                pieces += 1
        assert length == total
        assert pieces > 1
        assert got.hexdigest() == testapp.stream_sha256(total, chunk)
        # The chunked body ended cleanly (last chunk seen), so the connection
        # went back to the pool and the next request reuses it.
        resp = session.get(srv.url("/hello"), timeout=10)
        assert resp.content == b"Hello, world!\n"
        assert pool_counts(session, url) == (2, 1)


def test_requests_stream_abandoned_midway_then_session_goes_on(srv):
    total = 256 * 1024 * 1024  # far more than the socket buffers hold
    with requests.Session() as session:
        with session.get(srv.url("/stream?total=%d" % total), stream=True, timeout=30) as resp:
            assert resp.status_code == 200
            first = next(resp.iter_content(chunk_size=1 << 20))
            assert first
        # Closing the response mid-body drops that connection; the worker
        # that was writing it must notice and go back to serving.
        for i in range(20):
            resp = session.get(srv.url("/path/after-%d" % i), timeout=10)
            assert resp.status_code == 200
            assert resp.content == b"/path/after-%d?" % i
    # Both original workers serve again: the one that was writing the
    # abandoned body noticed the closed connection (it was neither stuck
    # nor killed and replaced).
    booted = set(srv.booted_pids())
    assert len(booted) == 2, srv.stderr()

    def fetch_pid(_):
        resp = requests.get(srv.url("/pid?sleep=0.2"), headers={"Connection": "close"}, timeout=10)
        assert resp.status_code == 200
        return int(resp.text)

    seen = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        # Concurrent slow requests keep one worker busy, so the other has to
        # accept too; a few rounds make that near certain.
        for _ in range(10):
            seen.update(pool.map(fetch_pid, range(4)))
            if seen == booted:
                break
    assert seen == booted, "pids answering %s, booted %s; stderr:\n%s" % (sorted(seen), sorted(booted), srv.stderr())


def test_requests_generator_body_is_chunked_and_keeps_the_connection(srv):
    sizes = [1, 7, 0, 65536, 100_000, 3, 1 << 20, 12345, 2]
    pieces = [os.urandom(n) for n in sizes]
    payload = b"".join(pieces)

    def gen():
        for p in pieces:
            if p:  # an empty chunk would end a chunked body early
                yield p

    with requests.Session() as session:
        resp = session.post(srv.url("/echo"), data=gen(), headers={"Content-Type": "application/x-gen"}, timeout=30)
        assert resp.status_code == 200
        assert resp.request.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.request.headers
        assert resp.headers["Content-Type"] == "application/x-gen"
        assert resp.content == payload

        resp = session.post(srv.url("/upload"), data=gen(), timeout=30)
        assert resp.status_code == 200
        assert resp.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}

        resp = session.get(srv.url("/hello"), timeout=10)
        assert resp.content == b"Hello, world!\n"
        # Each chunked body was read to its last chunk: one connection for all.
        assert pool_counts(session, srv.url("/")) == (3, 1)

"""Connection handling in the worker's poll loop: half-closed clients,
fairness between connections, lingering close after an error, and sockets
the application keeps alive past its request."""

import socket
import threading
import time

from support import EXAMPLES_DIR, read_until_close


def test_pipelined_requests_then_half_close_are_all_answered(servers):
    """A client that sends its requests and shuts down its sending side
    (`nc -N`, health checkers) still gets every response."""
    srv = servers.start(["get_started:hello_world"], chdir=EXAMPLES_DIR)
    for _ in range(20):
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data = read_until_close(s)
        assert data.count(b"HTTP/1.1 200 OK") == 2, data


def test_one_pipelining_client_does_not_starve_another(servers):
    srv = servers.start(["-w", "1", "get_started:hello_world"], chdir=EXAMPLES_DIR)
    stop = threading.Event()
    hog = socket.create_connection((srv.host, srv.port), timeout=5)

    def drain():
        try:
            while not stop.is_set() and hog.recv(1 << 16):
                pass
        except OSError:
            pass

    def flood():
        try:
            while not stop.is_set():
                hog.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
        except OSError:
            pass

    threads = [threading.Thread(target=drain, daemon=True), threading.Thread(target=flood, daemon=True)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_close(s).startswith(b"HTTP/1.1 200 OK")
    finally:
        stop.set()
        hog.close()
        for t in threads:
            t.join(5)


def test_error_response_survives_unread_request_bytes(servers):
    """A 431 sent while the client is still sending must reach it: the
    server lingers instead of resetting the connection."""
    srv = servers.start(["--limit-request-fields", "5", "get_started:hello_world"], chdir=EXAMPLES_DIR)
    for _ in range(5):
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(50)) + b"\r\n"
            s.sendall(head + b"Z" * 200_000)
            data = read_until_close(s)
        assert data.startswith(b"HTTP/1.1 431 "), data[:100]


def sends_until_reset(sock, attempts=50):
    """Send a byte at a time to a connection the server has ended; True
    once the server answers with a reset (its socket is gone), False if it
    keeps reading (a lingering close reads and drops what comes)."""
    for _ in range(attempts):
        try:
            sock.send(b"x")
        except (ConnectionResetError, BrokenPipeError):
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_asked_to_close_is_closed_without_lingering(servers):
    """Connection: close (or HTTP/1.0 without keep-alive) with all input
    read: the server closes its socket at once. It lingers instead, reading
    what still comes, when the client sent more than the request it asked
    to close after, and when the server ends a connection the client
    wanted kept (an error response)."""
    srv = servers.start(["--limit-request-fields", "5", "get_started:hello_world"], chdir=EXAMPLES_DIR)
    close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for request in (close, b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(request)
            assert read_until_close(s).count(b" 200 OK\r\n") == 1
            assert sends_until_reset(s)
    # Bytes after the request that asked to close: read, never served.
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(close + b"GET /unread HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_close(s).count(b" 200 OK\r\n") == 1
        assert not sends_until_reset(s, attempts=10)
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(50)) + b"\r\n"
        s.sendall(head)
        assert read_until_close(s).startswith(b"HTTP/1.1 431 ")
        assert not sends_until_reset(s, attempts=10)


def test_app_keeping_environ_does_not_keep_connection_open(servers):
    """An app that keeps its environ (and so wsgi.input, which holds the
    socket) past the request: expired keep-alive connections still close."""
    srv = servers.start(["--keep-alive", "1", "testapp:keep_environ_app"])
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK"), first
        s.settimeout(6)
        started = time.monotonic()
        assert s.recv(1) == b"", "connection not closed"
        assert time.monotonic() - started < 5


def test_request_that_arrived_while_worker_was_busy_is_served(servers):
    """Connection B's request arrives while the only worker serves A for
    longer than --keep-alive: B's keep-alive deadline passes, but its
    request is served, not dropped."""
    srv = servers.start(["-w", "1", "--keep-alive", "1", "edge_app:app"])
    with socket.create_connection((srv.host, srv.port), timeout=10) as b:
        b.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b.recv(65536).startswith(b"HTTP/1.1 200 ")
        with socket.create_connection((srv.host, srv.port), timeout=10) as a:
            a.sendall(b"GET /sleep?2.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(0.5)
            b.sendall(b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            assert read_until_close(a).startswith(b"HTTP/1.1 200 ")
        assert read_until_close(b).startswith(b"HTTP/1.1 200 ")


def test_many_blank_lines_before_a_request(servers):
    srv = servers.start(["-t", "5", "get_started:hello_world"], chdir=EXAMPLES_DIR)
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"\r\n" * 500_000 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_close(s).startswith(b"HTTP/1.1 200 OK")


def test_expect_continue_with_body_already_sent_keeps_the_connection(servers):
    srv = servers.start(["edge_app:app"])
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
            b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = read_until_close(s)
    assert data.count(b"HTTP/1.1 200 OK") == 2, data


def test_write_from_close_cannot_corrupt_the_connection(servers):
    srv = servers.start(["edge_app:app"])
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET /write-in-close HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    first, _, rest = data.partition(b"0\r\n\r\n")
    assert b"4\r\nbody\r\n" in first and b"LATE" not in data, data
    assert rest.startswith(b"HTTP/1.1 200 OK"), data


def test_keep_alive_connection_survives_its_workers_recycling(servers):
    """With --max-requests, a request sent on an idle keep-alive connection
    just after the worker decided to recycle is still served (and told to
    close), not met by a closed socket."""
    # No readiness probe: it would count as one of the three requests.
    srv = servers.start(["-w", "1", "--max-requests", "3", "get_started:hello_world"], chdir=EXAMPLES_DIR, ready=None)
    srv.wait_booted(1)
    a = socket.create_connection((srv.host, srv.port), timeout=5)
    b = socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        for conn in (a, b, a):  # the third request makes the worker recycle
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.05)
        b.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(b)
        assert data.startswith(b"HTTP/1.1 200 OK"), data
        assert b"Connection: close" in data
    finally:
        a.close()
        b.close()

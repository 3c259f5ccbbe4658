"""Slowloris: clients that open connections and send their requests as
slowly as they can, to tie up a server's workers.

What rwsgi guarantees (and these tests check):

* Request heads are read in each worker's poll loop, without blocking: a
  connection whose head is incomplete is parked and costs the worker
  nothing while it waits. A worker holds up to 1000 connections (parked
  and active); past that it stops accepting and new connections wait in
  the listen backlog for another worker, so `-w N` parks up to N * 1000
  slow heads while still serving everyone else.
* --timeout (-t) is also the deadline for a whole request head, counted
  from its first byte: trickling more bytes does not extend it. At the
  deadline the client gets `408 Request Timeout` and the connection closes.
* A request body is read by the application (wsgi.input), which blocks
  the worker, as in any synchronous server. Each read waits at most
  --timeout for data: a client that sends part of a body and stalls holds
  a worker for at most --timeout, then gets 408. So a stalled-body client
  is only a problem for as long as -t; a client that trickles its body
  (a byte per read, each within -t) holds the worker until
  --request-timeout kills it (unlimited by default): that limit is the
  application's configuration, as with Gunicorn's sync workers.

Every network call has a timeout; the tests assert counts and statuses,
not durations.
"""

import os
import resource
import select
import socket
import threading
import time
import warnings

import pytest

from support import get_close, wait_for

SLOW_CLIENTS = 1000
NORMAL_REQUESTS = 50
# rwsgi -t for the head test: longer than a normal request's socket timeout
# (10 s), so a server that made normal clients wait for the slow heads to
# expire fails the test instead of passing late.
HEAD_TIMEOUT = 15
PARTIAL_HEAD = b"GET /hello HTTP/1.1\r\nHost: slowloris\r\nX-Trickle: "


@pytest.fixture
def many_files():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (the servers this
    test starts inherit it), and put it back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = SLOW_CLIENTS + 500
    if now != resource.RLIM_INFINITY and now < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        pytest.skip("RLIMIT_NOFILE hard limit %d is below the %d this test needs" % (hard, needed))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def socket_inodes(pids):
    """The inodes of the sockets the processes pids have open."""
    inodes = set()
    for pid in pids:
        try:
            names = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, name))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:["):-1]))
    return inodes


def connections_held(pids, server_port, client_ports):
    """How many of our connections (by client port) the processes pids have
    accepted. A connection still in the listen backlog has no socket inode
    yet (0 in /proc/net/tcp), so it does not count."""
    inodes = socket_inodes(pids)
    held = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port in client_ports and int(fields[9]) in inodes:
                held += 1
    return held


def read_until_eof(sock, deadline, limit=1 << 20):
    """Everything the server sends until it closes (a reset ends it too).
    Fails if that has not happened by deadline (a time.monotonic() value)."""
    data = b""
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the server neither closed nor reset the connection in time; got %r" % data[:300])
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def answered(socks):
    """The sockets among socks the server has sent something on or closed."""
    poller = select.poll()
    by_fd = {}
    for s in socks:
        poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[s.fileno()] = s
    return [by_fd[fd] for fd, _ in poller.poll(0)]


class Trickler(threading.Thread):
    """Sends one more header byte on each active socket about once a second;
    never the blank line that would end the head."""

    def __init__(self, socks, interval=1.0):
        super().__init__(daemon=True)
        self.active = list(socks)
        self.interval = interval
        self.stopped = threading.Event()
        self.failed = 0
        self.sent = 0

    def run(self):
        while not self.stopped.wait(self.interval):
            for s in self.active:  # a new list is swapped in, never mutated
                if self.stopped.is_set():
                    return
                try:
                    s.send(b"a")
                    self.sent += 1
                except OSError:
                    self.failed += 1

    def stop(self):
        self.stopped.set()
        self.join(10)


def normal_request(srv):
    """One ordinary request on a new connection: (ok, what happened)."""
    try:
        data = get_close((srv.host, srv.port), b"/hello", timeout=10)
    except OSError as e:
        return False, repr(e)
    return data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"Hello, world!\n"), data[:200]


def normal_requests(srv, count, max_failures=2):
    """count ordinary requests, one after another; stops after max_failures
    failures (each may take the 10 s socket timeout). Returns the failures."""
    failures = []
    for _ in range(count):
        ok, what = normal_request(srv)
        if not ok:
            failures.append(what)
            if len(failures) >= max_failures:
                break
    return failures


def test_thousand_slow_heads_do_not_block_normal_clients(servers, many_files):
    srv = servers.start(["-w", "2", "-t", str(HEAD_TIMEOUT), "testapp:app"])
    workers = srv.wait_booted(2)

    slow = []
    trickler = None
    try:
        opened_at = time.monotonic()
        for _ in range(SLOW_CLIENTS):
            s = socket.create_connection((srv.host, srv.port), timeout=10)
            slow.append(s)
            s.sendall(PARTIAL_HEAD)
        trickler = Trickler(slow)
        trickler.start()

        # The workers really hold the slow connections (they are not just
        # queued in the kernel's backlog, where they would prove nothing).
        client_ports = {s.getsockname()[1] for s in slow}
        wait_for(
            lambda: connections_held(workers, srv.port, client_ports) == SLOW_CLIENTS,
            timeout=HEAD_TIMEOUT,
            message="the workers to accept %d slow connections" % SLOW_CLIENTS,
        )

        # Nothing answered or dropped while the workers took them all
        # (checked only well before the head deadline, as below).
        if time.monotonic() - opened_at < HEAD_TIMEOUT - 2:
            assert answered(slow) == [] and trickler.failed == 0

        failures = normal_requests(srv, NORMAL_REQUESTS)
        assert not failures, "normal requests failed: %r; stderr:\n%s" % (failures, srv.stderr()[-3000:])

        # While the head deadline has not passed yet (on a very slow machine
        # it may have, and then there is nothing to check), no slow client
        # was answered or dropped to make room for the normal ones.
        if time.monotonic() - opened_at < HEAD_TIMEOUT - 2:
            early = answered(slow)
            assert not early, "%d slow connections answered before the head timeout, e.g. %r" % (
                len(early), early[0].recv(200))
            assert trickler.failed == 0
        else:
            warnings.warn("the head deadline passed before the normal requests were done: "
                          "the check that no slow client was answered early was left out")

        # Most slow clients go quiet now; a few keep trickling, which must
        # not extend the head deadline. Sample both kinds rather than
        # waiting on all of them.
        persistent = slow[1::200]
        quiet = slow[100::100]
        trickler.active = persistent
        deadline = time.monotonic() + HEAD_TIMEOUT + 10
        for kind, group in (("trickling", persistent), ("quiet", quiet)):
            for s in group:
                data = read_until_eof(s, deadline)
                assert data.startswith(b"HTTP/1.1 408 "), "%s slow client got %r" % (kind, data[:300])
                assert data.count(b"HTTP/1.1 ") == 1, data
                assert b"Hello, world!" not in data, data
            trickler.active = []
    finally:
        if trickler is not None:
            trickler.stop()
        for s in slow:
            s.close()

    # The server is unharmed: same workers, still serving.
    for _ in range(5):
        ok, what = normal_request(srv)
        assert ok, what
    assert set(srv.booted_pids()) == set(workers), srv.stderr()
    assert "WORKER TIMEOUT" not in srv.stderr()


BODY_TIMEOUT = 3  # rwsgi -t for the body tests


def stalled_body(srv, path=b"/upload", sent=b"0123456789"):
    """A complete head promising 100000 body bytes, a few of them, then nothing."""
    s = socket.create_connection((srv.host, srv.port), timeout=BODY_TIMEOUT + 20)
    s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: slowloris\r\nContent-Length: 100000\r\n\r\n" + sent)
    return s


@pytest.mark.parametrize("stalled", [1, 2], ids=["fewer-than-workers", "as-many-as-workers"])
def test_stalled_bodies_hold_a_worker_for_at_most_the_timeout(servers, stalled):
    """-w 2 and 1 or 2 clients that send part of a body and stop. With one,
    the other worker serves everyone meanwhile; with two, both workers may
    be blocked, but only for --timeout: then the stalled clients get 408
    and normal clients (who waited up to that long) are served."""
    srv = servers.start(["-w", "2", "-t", str(BODY_TIMEOUT), "testapp:app"])
    workers = srv.wait_booted(2)
    bodies = []
    try:
        for _ in range(stalled):
            bodies.append(stalled_body(srv))
            # Let a worker take it and block in the body read, so the next
            # connection goes to the other worker.
            time.sleep(0.3)
        failures = normal_requests(srv, 20)
        assert not failures, "normal requests failed: %r; stderr:\n%s" % (failures, srv.stderr()[-3000:])
        if stalled < len(workers):
            # Served beside the stalled client, not after its 408: it is
            # still waiting (20 quick requests take far less than -t).
            assert answered(bodies) == [], "the stalled client was answered before the others were served"
        deadline = time.monotonic() + BODY_TIMEOUT + 10
        for s in bodies:
            data = read_until_eof(s, deadline)
            assert data.startswith(b"HTTP/1.1 408 "), data[:300]
            assert data.count(b"HTTP/1.1 ") == 1, data
    finally:
        for s in bodies:
            s.close()
    # Blocked on a client is not stuck in the app: no worker was killed.
    assert set(srv.booted_pids()) == set(workers), srv.stderr()
    assert "WORKER TIMEOUT" not in srv.stderr()


def test_trickling_body_is_bounded_by_request_timeout(servers):
    """A client that trickles its body, each byte well within -t, keeps its
    worker reading (that is progress, not a stuck worker): only
    --request-timeout bounds it. The worker is then killed and replaced;
    the other worker serves everyone meanwhile."""
    srv = servers.start(["-w", "2", "-t", str(BODY_TIMEOUT), "--request-timeout", "4", "testapp:app"])
    workers = srv.wait_booted(2)
    s = stalled_body(srv, sent=b"x")
    stop = threading.Event()
    sent = []

    def trickle():
        while not stop.wait(0.5):
            try:
                s.send(b"x")
                sent.append(1)
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        failures = normal_requests(srv, 20)
        assert not failures, "normal requests failed: %r; stderr:\n%s" % (failures, srv.stderr()[-3000:])
        # Served beside the trickling client: its worker is still reading.
        assert answered([s]) == [], "the trickling client's connection ended before the others were served"
        # The connection ends (the worker holding it is killed) long before
        # the 100000 bytes could have been trickled.
        data = read_until_eof(s, time.monotonic() + 20)
        assert not data.startswith(b"HTTP/1.1 200"), data[:300]
    finally:
        stop.set()
        t.join(10)
        s.close()
    srv.wait_stderr(r"WORKER TIMEOUT \(pid:\d+\): request took too long", timeout=15)
    wait_for(lambda: len(srv.booted_pids()) >= 3, 15, message="a replacement worker")
    assert len(set(srv.booted_pids()) - set(workers)) == 1, srv.stderr()
    for _ in range(5):
        ok, what = normal_request(srv)
        assert ok, what

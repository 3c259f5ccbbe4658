"""Request threads (`--threads N`) and `--worker-connections N`.

With --threads N a worker serves up to N requests at once on N threads that
share its interpreter (wsgi.multithread is then True); its main thread keeps
the poll (accepting, request heads, keep-alive). Requests wait for a free
thread in arrival order. A worker stops accepting while it holds
--worker-connections connections (active and idle keep-alive together), so
the other workers take the load. The heartbeat (-t) is that of the worker's slowest busy
thread, and --request-timeout applies to its oldest running request: one
thread stuck in the app gets the worker killed (every thread's stack
logged) and replaced, however busy the other threads are.

The app is apps/threads_app.py: it counts the requests in the app at once
(and the most seen) per worker, and names the ones in progress, so the
tests assert on what the app observed and on the order of events, not on
durations. Every network call has a timeout.
"""

import http.client
import json
import os
import random
import re
import select
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter

import rawhttp
from support import ClientThreads, get_close, run_cli, wait_for
from test_reload import APP as RELOAD_APP, Load, fetch

APP = "threads_app:app"


def state(srv):
    """The app's counters, from one worker (the only one with -w 1)."""
    resp = srv.get("/state", timeout=10)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def wait_running(srv, name, timeout=10):
    """Wait until the request named `name` is inside the app."""
    wait_for(lambda: state(srv)["running"].get(name), timeout, message="request %r in the app" % name)


def pid_of(resp):
    return int(resp.header("X-Pid"))


def wait_all_serving(srv, workers, timeout=15):
    """Wait until each worker has answered a request (a worker logs
    "Booting" before it imports the app)."""
    seen = set()

    def all_seen():
        seen.add(pid_of(srv.get("/hello", timeout=10)))
        return seen >= set(workers)

    wait_for(all_seen, timeout, message="workers %r serving" % (workers,))


# -- concurrency within one worker -------------------------------------------


def burst(srv, clients, target):
    """`clients` connections, opened first; then every client sends one GET
    at the same moment (a barrier). Returns the responses (or exceptions)."""
    conns = [srv.connect(timeout=10) for _ in range(clients)]
    barrier = threading.Barrier(clients, timeout=10)
    results = [None] * clients

    def client(i):
        try:
            barrier.wait()
            results[i] = conns[i].request("GET", target, headers=[("Connection", "close")])
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for c in conns:
            c.close()
    return results


@pytest.mark.parametrize("threads", [8, 1])
def test_requests_of_one_worker_run_at_once_on_its_threads(servers, threads):
    """8 clients at once against one worker: with --threads 8 the app sees
    all 8 requests in flight together, on 8 threads of one process; with
    --threads 1 (the control) never more than one."""
    clients = 8
    srv = servers.start(["-w", "1", "--threads", str(threads), APP])
    (worker,) = srv.wait_booted(1)
    # Each request sleeps 50 ms: a few bursts, in case the clients of one
    # were not all in at once.
    for _ in range(5 if threads > 1 else 3):
        results = burst(srv, clients, "/sleep?ms=50")
        assert all(isinstance(r, rawhttp.Response) and r.status == 200 for r in results), results
        assert {pid_of(r) for r in results} == {worker}
        if threads > 1 and state(srv)["peak"] == clients:
            break
    st = state(srv)
    assert st["pid"] == worker
    assert st["peak"] == min(threads, clients), st
    # Every request thread ran the app, and no other thread did.
    assert st["threads_seen"] == threads, st
    assert st["in_flight"] == 0, st


@pytest.mark.parametrize(
    "workers,threads,multithread,multiprocess",
    [(1, 4, True, False), (1, 1, False, False), (2, 1, False, True), (2, 4, True, True)],
)
def test_wsgi_multithread_and_multiprocess(servers, workers, threads, multithread, multiprocess):
    srv = servers.start(["-w", str(workers), "--threads", str(threads), APP])
    for _ in range(4):
        env = json.loads(srv.get("/environ", timeout=10).body)
        assert env["multithread"] is multithread, env
        # wsgi.multiprocess says whether other processes serve the same app:
        # -w > 1, whatever --threads is.
        assert env["multiprocess"] is multiprocess, env
        assert env["run_once"] is False, env


def test_a_connection_back_from_a_thread_serves_what_came_meanwhile(servers):
    """A connection goes back to the poller after each request. Whatever
    came for it before the hand-back must be served without new input:
    a request pipelined behind a body larger than one read, and a request
    sent while the thread was still in the app."""
    srv = servers.start(["-w", "1", "--threads", "4", "--keep-alive", "30", APP])
    big = os.urandom(300 * 1024)
    # A request left unread would be noticed only when the keep-alive
    # expires: 30 s, far past each read's timeout.
    with srv.connect(timeout=8) as conn:
        conn.send(
            rawhttp.build_request("POST", "/echo?name=big", body=big)
            + rawhttp.build_request("GET", "/environ/after-big?i=1")
        )
        first = conn.read_response("POST")
        assert (first.status, first.body) == (200, big)
        second = conn.read_response()
        assert second.status == 200 and json.loads(second.body)["path"] == "/environ/after-big"

        for i in range(5):
            conn.send(rawhttp.build_request("GET", "/sleep?ms=300&name=held%d" % i))
            wait_running(srv, "held%d" % i)
            conn.send(rawhttp.build_request("GET", "/environ/next%d" % i))
            assert conn.read_response().status == 200
            nxt = conn.read_response()
            assert nxt.status == 200 and json.loads(nxt.body)["path"] == "/environ/next%d" % i


def test_a_slow_client_holds_one_thread_and_the_others_serve(servers):
    """A client trickles a 20-byte POST body a byte every 0.3 s: it holds
    one of the worker's two threads, and 20 other requests are served on the
    other meanwhile. The last body byte is sent only after those 20, so
    the order is certain; then the slow client gets its body back."""
    srv = servers.start(["-w", "1", "--threads", "2", APP])
    body = b"ABCDEFGHIJKLMNOPQRST"
    gets_done = threading.Event()
    result = {"sent": 0}
    slow = srv.connect(timeout=20)
    slow.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def trickle():
        try:
            slow.send(b"POST /echo?name=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
                      b"Connection: close\r\n\r\n")
            for i in range(len(body)):
                if i == len(body) - 1 and not gets_done.wait(60):
                    raise AssertionError("the other requests never finished")
                slow.send(body[i:i + 1])
                result["sent"] = i + 1
                time.sleep(0.3)
            result["response"] = slow.read_response("POST")
        except Exception as e:  # noqa: BLE001 - checked below
            result["error"] = e

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        wait_running(srv, "slow")
        with srv.connect(timeout=10) as conn:
            for i in range(20):
                resp = conn.request("GET", "/environ/%d?i=%d" % (i, i))
                assert resp.status == 200, resp
                env = json.loads(resp.body)
                assert (env["path"], env["query"]) == ("/environ/%d" % i, "i=%d" % i), env
        # Served while the slow request was in the app, reading its body.
        st = state(srv)
        assert st["running"] == {"slow": 1}, st
    finally:
        gets_done.set()
        t.join(30)
        slow.close()
    assert not t.is_alive(), "the slow client never finished"
    assert "error" not in result, result
    resp = result["response"]
    assert resp.status == 200, resp
    assert resp.body == body, resp
    assert resp.header("X-Length") == "20"


# -- thread safety under load ------------------------------------------------------

LOAD_SECONDS = 30
LOAD_CLIENTS = 64


def check_one(conn, rng, token):
    """One random request on an http.client connection, checked byte for
    byte. Returns the worker pid that served it."""
    kind = rng.random()
    headers = {"X-Token": token}
    if kind < 0.3:
        path, query = "/environ/%s" % token, "q=%s&x=%d" % (token, rng.randrange(10**9))
        conn.request("GET", path + "?" + query, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise AssertionError("GET %s: status %d %r" % (path, resp.status, data[:200]))
        env = json.loads(data)
        want = {"method": "GET", "path": path, "query": query, "token": token, "multithread": True}
        got = {k: env[k] for k in want}
        if got != want:
            raise AssertionError("environ mismatch: %r != %r" % (got, want))
        pid = env["pid"]
    elif kind < 0.5:
        conn.request("GET", "/hello", headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        pid = int(resp.getheader("X-Pid"))
        if resp.status != 200 or data != b"hello %d\n" % pid:
            raise AssertionError("GET /hello: %d %r" % (resp.status, data[:200]))
    else:
        # Mostly small bodies, many up to 64 KiB.
        size = rng.randint(1, 64) if rng.random() < 0.3 else rng.randint(1, 64 * 1024)
        body = os.urandom(size)
        path, query = "/echo/%s" % token, "n=%d" % size
        conn.request("POST", path + "?" + query, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise AssertionError("POST %s: status %d" % (path, resp.status))
        if data != body:
            raise AssertionError("POST %s: echo of %d bytes differs (got %d bytes)" % (path, size, len(data)))
        if resp.getheader("X-Path") != path + "?" + query or resp.getheader("X-Token") != token:
            raise AssertionError("POST %s: headers %r" % (path, resp.getheaders()))
        pid = int(resp.getheader("X-Pid"))
    if resp.will_close:
        raise AssertionError("the server closed a keep-alive connection: %r" % resp.getheaders())
    return pid


def test_thread_safety_under_mixed_keep_alive_load(servers):
    """64 keep-alive clients for 30 s against 2 workers x 8 threads: random
    GETs and POSTs (1 B to 64 KiB bodies echoed), every response checked
    byte for byte against its own request. Any mix-up between threads
    (a body, a path, a header of another request) fails."""
    srv = servers.start(["-w", "2", "--threads", "8", "--keep-alive", "30", APP])
    workers = set(srv.wait_booted(2))
    # Both serve before the clients open their keep-alive connections, or
    # one worker that is ready first may take all of them.
    wait_all_serving(srv, workers)
    lock = threading.Lock()
    done = Counter()
    failures = []
    stop = threading.Event()
    deadline = time.monotonic() + LOAD_SECONDS
    cpu_before = os.times()

    def client(index):
        rng = random.Random(index)
        conn = None
        n = 0
        while time.monotonic() < deadline and not stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
            token = "c%d-r%d" % (index, n)
            n += 1
            try:
                pid = check_one(conn, rng, token)
            except Exception as e:  # noqa: BLE001 - every failure counts
                with lock:
                    failures.append("%s: %r" % (token, e))
                    if len(failures) >= 20:
                        stop.set()
                conn.close()
                conn = None
                continue
            with lock:
                done[pid] += 1
            # A short pause keeps 64 threads from spinning this process.
            time.sleep(rng.uniform(0, 0.05))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(LOAD_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LOAD_SECONDS + 30)
    cpu = os.times()
    cpu_used = (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system)
    print("threads load: %d requests checked (per worker: %s), %d failed, test client CPU %.1f s"
          % (sum(done.values()), dict(done), len(failures), cpu_used))
    assert not any(t.is_alive() for t in threads)
    assert failures == [], failures[:10]
    assert sum(done.values()) > LOAD_CLIENTS
    assert set(done) == workers, (done, workers)
    log = srv.stderr()
    assert "Traceback" not in log and "[ERROR]" not in log and "panicked" not in log, log[-3000:]
    assert len(srv.booted_pids()) == 2, log[-3000:]


# -- recycling and reload ------------------------------------------------------------


def test_max_requests_recycles_threaded_workers_without_failed_requests(servers):
    """Keep-alive clients (requests.Session, no retries) against workers
    recycled every 25-30 requests while their other threads are busy: the
    last response of a worker says `Connection: close`, nothing in flight is
    lost, and the clients never see an error."""
    # No readiness probe: it would count toward --max-requests.
    srv = servers.start(["-w", "2", "--threads", "4", "--max-requests", "25", "--max-requests-jitter", "5", APP],
                        ready=None)
    srv.wait_booted(2)
    lock = threading.Lock()
    failures = []
    pids = []
    closes = []

    def client(index):
        with requests.Session() as session:
            # Explicitly no retries: a request that fails is a failure.
            session.mount("http://", HTTPAdapter(max_retries=0))
            for n in range(100):
                token = "c%d-r%d" % (index, n)
                try:
                    if n % 2:
                        body = token.encode() * (1 + n % 7)
                        r = session.post(srv.url("/echo/" + token), data=body, headers={"X-Token": token}, timeout=10)
                        ok = r.status_code == 200 and r.content == body and r.headers["X-Token"] == token
                    else:
                        r = session.get(srv.url("/environ/" + token), headers={"X-Token": token}, timeout=10)
                        ok = r.status_code == 200 and (r.json()["path"], r.json()["token"]) == ("/environ/" + token, token)
                    if not ok:
                        raise AssertionError("bad response %d %r" % (r.status_code, r.content[:200]))
                    with lock:
                        pids.append(int(r.headers["X-Pid"]))
                        if r.headers.get("Connection", "").lower() == "close":
                            closes.append(token)
                except Exception as e:  # noqa: BLE001 - every failure counts
                    with lock:
                        failures.append("%s: %r" % (token, e))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    log = srv.stderr()
    print("max-requests with threads: %d ok, %d failed, %d worker pids, %d Connection: close"
          % (len(pids), len(failures), len(set(pids)), len(closes)))
    assert failures == [], (failures[:10], log[-3000:])
    assert len(pids) == 800
    # 800 requests over workers recycled every 25..30 requests.
    assert len(set(pids)) > 2, log[-3000:]
    assert "Autorestarting worker after current request" in log
    assert closes, "no response announced the connection's close"
    assert "Traceback" not in log and "panicked" not in log, log[-3000:]


# test_reload's app, with each request spending 20 ms in the app: requests
# are in flight on several threads when an old worker stops.
SLOWED_DOWN = '''
import time as _time
_unslowed_app = app


def app(environ, start_response):
    _time.sleep(0.02)
    return _unslowed_app(environ, start_response)
'''


def write_threaded_reload_app(directory, version):
    (directory / "reload_app.py").write_text(RELOAD_APP.format(version=version) + SLOWED_DOWN)


def test_hup_under_load_with_threads_loses_nothing(servers, tmp_path):
    write_threaded_reload_app(tmp_path, b"v0")
    srv = servers.start(["-w", "2", "--threads", "4", "reload_app:app"], chdir=str(tmp_path))
    generation = set(srv.wait_booted(2))
    seen = set(generation)
    with Load(srv, threads=4) as load:
        for n, version in enumerate((b"v1", b"v2"), start=1):
            time.sleep(0.5)
            write_threaded_reload_app(tmp_path, version)
            os.kill(srv.pid, signal.SIGHUP)
            wait_for(lambda: fetch(srv).startswith(version), 20, message="%s served" % version.decode())
            wait_for(lambda: srv.stderr().count("Reload: 2 new workers booted") >= n, 20, message="reload %d" % n)
            new = set(srv.booted_pids()) - seen
            assert len(new) == 2, (new, srv.stderr()[-3000:])
            seen |= new
            # The new workers serve.
            wait_for(lambda: int(fetch(srv).split(b" ")[1]) in new, 20, message="a new worker serving")
        time.sleep(0.5)
    print("HUP with threads: %d requests sent, %d failed" % (load.sent, len(load.failed)))
    assert load.failed == [], load.failed[:5]
    assert load.sent > 50
    assert {b"v0", b"v1", b"v2"} <= load.bodies
    assert srv.stderr().count("Reload: 2 new workers booted") == 2
    assert len(seen) == 6


# -- stuck threads: heartbeat and --request-timeout -----------------------------------


class Background(ClientThreads):
    """Clients sending GET `target` back to back, each on a new connection,
    until stopped. A failure counts as expected only once the master has
    logged the worker's timeout (it logs before it kills)."""

    def __init__(self, srv, target, clients):
        super().__init__(clients)
        self.srv = srv
        self.target = target
        self.pids = []
        self.unexpected = []

    def request(self):
        try:
            resp = self.srv.get(self.target, timeout=10)
            if resp.status != 200:
                raise AssertionError("status %d" % resp.status)
            with self.lock:
                self.pids.append(pid_of(resp))
        except Exception as e:  # noqa: BLE001 - classified here
            if "WORKER TIMEOUT" not in self.srv.stderr():
                with self.lock:
                    self.unexpected.append(repr(e))


def start_stuck(srv, target):
    """Send GET target on its own thread; returns (thread, result dict)
    with the raw bytes the server sent until it closed."""
    result = {}

    def run():
        try:
            result["data"] = get_close((srv.host, srv.port), target.encode(), timeout=30)
        except Exception as e:  # noqa: BLE001 - checked by the caller
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def assert_replaced_and_serving(srv, old):
    wait_for(lambda: len(srv.booted_pids()) >= 2, 15, message="a replacement worker")
    new = srv.booted_pids()[-1]
    assert new != old
    for _ in range(5):
        resp = srv.get("/hello", timeout=10)
        assert resp.status == 200 and pid_of(resp) == new, resp


def test_one_thread_stuck_in_the_app_gets_the_worker_killed(servers):
    srv = servers.start(["-w", "1", "--threads", "4", "-t", "2", APP])
    (worker,) = srv.wait_booted(1)
    t, stuck = start_stuck(srv, "/stuck?name=stuck&s=60")
    wait_running(srv, "stuck")
    # The other threads serve on while one sleeps in the app, until the
    # master notices that thread's silence.
    with Background(srv, "/hello", 2) as load:
        srv.wait_stderr(r"WORKER TIMEOUT \(pid:%d\): no heartbeat" % worker, 20)
    log = srv.stderr()
    print("stuck thread: %d requests served beside it" % load.pids.count(worker))
    assert load.unexpected == [], (load.unexpected[:5], log[-3000:])
    assert load.pids.count(worker) >= 3, log[-3000:]
    # faulthandler: every thread's stack, the stuck one in the app's code.
    srv.wait_stderr(r"line \d+ in stuck_in_app_code", 10)
    srv.wait_stderr(r"Worker %d killed as stuck" % worker, 10)
    log = srv.stderr()
    dump = log[log.index("Fatal Python error"):log.index("killed as stuck")]
    # One stack per thread with a Python thread state: the 4 request
    # threads and the worker's main thread. Counted by their headers
    # ("Thread 0x...", "Current thread 0x...", with the thread's name in
    # brackets from CPython 3.14): 3.14's faulthandler adds the C stack of
    # the thread the signal came to, under a header of its own ("Current
    # thread's C stack trace (most recent call first):").
    stacks = re.findall(r"^(?:Current thread|Thread) 0x[0-9a-f]+ .*\(most recent call first\):$", dump, re.M)
    assert len(stacks) == 5, dump
    assert_replaced_and_serving(srv, worker)
    t.join(35)
    assert not t.is_alive(), "the stuck request's client never returned"
    assert "error" not in stuck, stuck
    assert not stuck["data"].startswith(b"HTTP/1.1 200"), stuck


def test_request_timeout_counts_from_the_oldest_request(servers):
    """--request-timeout 2: a request sleeping 10 s gets its worker killed,
    while short requests keep starting and finishing on the other threads."""
    srv = servers.start(["-w", "1", "--threads", "4", "--request-timeout", "2", APP])
    (worker,) = srv.wait_booted(1)
    t, long_request = start_stuck(srv, "/stuck?name=long&s=10")
    wait_running(srv, "long")
    # Two clients of 300 ms requests: one is nearly always running.
    with Background(srv, "/sleep?ms=300", 2) as load:
        srv.wait_stderr(r"WORKER TIMEOUT \(pid:%d\): request took too long" % worker, 20)
    log = srv.stderr()
    assert load.unexpected == [], (load.unexpected[:5], log[-3000:])
    assert load.pids.count(worker) >= 1, log[-3000:]
    srv.wait_stderr(r"line \d+ in stuck_in_app_code", 10)
    srv.wait_stderr(r"Worker %d killed as stuck" % worker, 10)
    assert_replaced_and_serving(srv, worker)
    t.join(35)
    assert not t.is_alive(), "the stuck request's client never returned"
    assert "error" not in long_request, long_request
    # Killed before its 10 s were up: no answer.
    assert not long_request["data"].startswith(b"HTTP/1.1 200"), long_request


# -- --worker-connections ------------------------------------------------------------


def test_a_full_worker_leaves_new_connections_to_the_others(servers):
    srv = servers.start(["-w", "2", "--worker-connections", "1", "--keep-alive", "30", APP])
    srv.wait_booted(2)
    with srv.connect(timeout=10) as a, srv.connect(timeout=10) as b, srv.connect(timeout=10) as c:
        first = a.request("GET", "/hello")
        assert first.status == 200 and "close" not in first.connection_tokens(), first
        # a's worker holds its one connection (idle keep-alive): b can only
        # go to the other worker.
        second = b.request("GET", "/hello")
        assert second.status == 200, second
        assert pid_of(second) != pid_of(first)
        # Both workers are full: c waits unanswered.
        c.send(rawhttp.build_request("GET", "/hello"))
        readable, _, _ = select.select([c.sock], [], [], 1.0)
        assert readable == [], "answered while both workers were full"
        # a and b stay with their workers; once a closes, c is served there.
        assert pid_of(a.request("GET", "/hello")) == pid_of(first)
        assert pid_of(b.request("GET", "/hello")) == pid_of(second)
        a.close()
        assert pid_of(c.read_response()) == pid_of(first)


def test_a_full_worker_accepts_again_once_a_connection_closes(servers):
    srv = servers.start(["-w", "1", "--worker-connections", "1", "--keep-alive", "30", APP])
    a = srv.connect(timeout=10)
    try:
        first = a.request("GET", "/hello")
        assert first.status == 200 and "close" not in first.connection_tokens(), first
        with srv.connect(timeout=10) as b:
            b.send(rawhttp.build_request("GET", "/hello", [("Connection", "close")]))
            # a is idle but open: the worker is full and b waits unanswered.
            readable, _, _ = select.select([b.sock], [], [], 1.0)
            assert readable == [], "answered while the worker was full"
            a.close()
            second = b.read_response()
            assert second.status == 200, second
    finally:
        a.close()


def test_every_connection_gets_its_turn_while_all_threads_are_busy(servers):
    """A worker whose threads are all busy still accepts: while more
    keep-alive clients than threads keep it busy (each sends its next
    request as soon as it has an answer), clients that connect now are
    served too, not left in the listen backlog until a busy one leaves."""
    srv = servers.start(["-w", "1", "--threads", "2", "--keep-alive", "30", APP])
    srv.wait_booted(1)
    busy, served = 4, [0] * 4
    stop = threading.Event()

    def busy_client(i):
        with srv.connect(timeout=15) as conn:
            while not stop.is_set():
                resp = conn.request("GET", "/sleep?ms=20")
                assert resp.status == 200, resp
                served[i] += 1

    def newcomer(_):
        with srv.connect(timeout=20) as conn:
            return conn.request("GET", "/hello").status

    with ThreadPoolExecutor(busy) as pool:
        running = [pool.submit(busy_client, i) for i in range(busy)]
        try:
            wait_for(lambda: min(served) > 0, timeout=15, message="every busy client served once")
            with ThreadPoolExecutor(4) as others:
                statuses = list(others.map(newcomer, range(4), timeout=40))
            # The busy clients were still going all along: the newcomers
            # were taken in beside them.
            assert not any(f.done() for f in running), [f.exception() for f in running if f.done()]
        finally:
            stop.set()
        for f in running:
            f.result(timeout=30)
    assert statuses == [200] * 4, statuses


# -- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag,message", [("--threads", "threads: must be"),
                                          ("--worker-connections", "worker_connections: must be")])
def test_zero_is_refused(flag, message):
    for extra in (["--check-config"], ["-b", "127.0.0.1:0"]):
        result = run_cli([flag, "0"] + extra + [APP], timeout=15)
        out = result.stdout + result.stderr
        assert result.returncode != 0, out
        assert message in out, out
        assert "Booting worker" not in out, out
    # 1 is fine: it is the 0 that is refused.
    ok = run_cli([flag, "1", "--check-config", APP], timeout=15)
    assert ok.returncode == 0, ok.stdout + ok.stderr

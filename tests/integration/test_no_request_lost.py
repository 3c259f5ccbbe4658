"""Regressions: ways a stop, a reload or a misbehaving app could lose a
request or harm other clients. Each test names the failure it guards."""

import os
import signal
import socket
import threading
import time

import pytest

import rawhttp
from support import pid_alive, wait_for, worker_pids


def read_response(conn, timeout=10.0):
    conn.sock.settimeout(timeout)
    return conn.read_response()


# -- a stop during a keep-alive request -----------------------------------------


def test_a_response_written_after_term_says_connection_close(servers):
    """A worker told to stop while a keep-alive request runs must not
    promise keep-alive in that response: the client's next request on the
    connection would be read and dropped."""
    srv = servers.start(["-w", "1", "--keep-alive", "75", "testapp:app"])
    (worker,) = srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/pid?sleep=1"))
        time.sleep(0.3)
        os.kill(worker, signal.SIGTERM)
        resp = read_response(conn)
        assert resp.status == 200, resp
        assert "close" in resp.connection_tokens(), resp.headers


def test_a_reload_during_a_keep_alive_request_closes_it_cleanly(servers):
    """HUP while a keep-alive request runs: its response says
    Connection: close, and a request sent next on a new connection is
    served (by the new worker)."""
    srv = servers.start(["-w", "1", "--keep-alive", "75", "testapp:app"])
    (old,) = srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/pid?sleep=3"))
        time.sleep(0.3)
        os.kill(srv.pid, signal.SIGHUP)
        resp = read_response(conn)
        assert resp.status == 200 and resp.text == str(old), resp
        assert "close" in resp.connection_tokens(), resp.headers
    after = srv.request("POST", "/echo", body=b"after the reload")
    assert after.status == 200 and after.body == b"after the reload", after


def test_a_request_sent_right_after_a_streamed_response_is_served_at_a_stop(servers):
    """A streamed response whose head promised keep-alive before the stop:
    the request the client sends next, within the stop grace, is served
    (with Connection: close) rather than dropped."""
    srv = servers.start(["-w", "1", "--keep-alive", "75", "testapp:app"])
    (worker,) = srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/slowstream?pieces=6&delay=0.2"))
        conn.sock.settimeout(10)
        assert conn._fill(), "no response bytes"  # the head is out
        os.kill(worker, signal.SIGTERM)
        streamed = conn.read_response()
        assert streamed.status == 200 and streamed.body.count(b"piece") == 6, streamed
        assert "close" not in streamed.connection_tokens(), "the head went out before the stop"
        conn.send(rawhttp.build_request("POST", "/echo", body=b"next"))
        resp = read_response(conn)
    assert resp.status == 200 and resp.body == b"next", resp
    assert "close" in resp.connection_tokens(), resp.headers



@pytest.mark.parametrize("stop", ["master", "worker"])
def test_an_idle_keep_alive_connection_is_kept_through_the_drain(servers, stop):
    """A balancer's idle keep-alive connection at a stop (of the server, or
    of one worker, as HUP and recycling do): it stays open, so a request the
    client sends on it seconds later is served with Connection: close; it is
    never closed under a request that may be on its way. Once the client
    has its answer and closes, the worker ends at once."""
    srv = servers.start(["-w", "1", "--keep-alive", "75", "--graceful-timeout", "20", "testapp:app"])
    (worker,) = srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/pid"))
        first = read_response(conn)
        assert first.status == 200 and "close" not in first.connection_tokens(), first
        os.kill(srv.pid if stop == "master" else worker, signal.SIGTERM)
        time.sleep(3)
        conn.send(rawhttp.build_request("POST", "/echo", body=b"after the stop"))
        resp = read_response(conn)
        assert resp.status == 200 and resp.body == b"after the stop", resp
        assert "close" in resp.connection_tokens(), resp.headers
    ended = time.monotonic()
    wait_for(lambda: not os.path.exists("/proc/%d" % worker), 5, message="the worker to end")
    assert time.monotonic() - ended < 4, "the worker waited on after its last connection closed"
    if stop == "master":
        srv.wait(10)
    assert "killed after the graceful timeout" not in srv.stderr()


def test_an_idle_connection_left_open_ends_before_the_graceful_kill(servers):
    """A client that keeps its idle connection and sends nothing more: the
    worker closes it itself (and lingers for the client's close) before
    --graceful-timeout runs out, and exits cleanly instead of being killed."""
    srv = servers.start(["-w", "1", "--keep-alive", "75", "--graceful-timeout", "6", "testapp:app"])
    srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/pid"))
        assert read_response(conn).status == 200
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        conn.sock.settimeout(10)
        assert conn.sock.recv(1) == b"", "the worker closed the connection"
        closed_after = time.monotonic() - started
        code = srv.wait(10)
    assert 2.5 < closed_after < 5, closed_after
    assert code == 0, srv.stderr()
    assert "killed after the graceful timeout" not in srv.stderr()


# -- an app's own SIGTERM handler --------------------------------------------------


def start_lifecycle(servers, tmp_path, *args, term=None):
    env = {"LIFECYCLE_DIR": str(tmp_path)}
    if term:
        env["LIFECYCLE_TERM"] = term
    return servers.start(list(args) + ["lifecycle_app:app"], env=env)


def marks(tmp_path, name):
    return [p.read_text() for p in tmp_path.glob(name + "-*")]


def stop_and_time(srv, limit=10.0):
    """TERM the master; the seconds until it exits (fails past `limit`)."""
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.wait(limit)
    return time.monotonic() - started


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_apps_sigterm_handler_finds_a_real_one_to_chain_to(servers, tmp_path, threads):
    """An app's SIGTERM handler, installed at import, finds rwsgi's handler
    (not None) to chain to, runs at TERM, and the stop is as prompt as
    without it (not the --graceful-timeout kill)."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--threads", threads, "--graceful-timeout", "30", term="chain")
    srv.wait_booted(1)
    assert srv.get("/").status == 200
    stop_and_time(srv)
    assert marks(tmp_path, "term") == ["<built-in function graceful_stop>"], srv.stderr()
    assert "graceful timeout" not in srv.stderr()


@pytest.mark.parametrize("term", ["exit", "alone"])
def test_a_sigterm_handler_that_does_not_chain_harms_no_request(servers, tmp_path, term):
    """A handler that raises SystemExit, or one that does not chain at
    all: the request in flight at TERM still gets its answer, the handler
    runs, and the worker stops promptly."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--graceful-timeout", "30", term=term)
    srv.wait_booted(1)
    with srv.connect() as conn:
        conn.send(rawhttp.build_request("GET", "/sleep?s=1"))
        time.sleep(0.3)
        srv.signal(signal.SIGTERM)
        resp = read_response(conn)
    assert resp.status == 200 and resp.text.startswith("slept"), resp
    srv.wait(10)
    assert len(marks(tmp_path, "term")) == 1, srv.stderr()
    assert "graceful timeout" not in srv.stderr()


# -- a request that kills its worker ----------------------------------------------


def test_a_query_of_death_does_not_take_the_service_down(servers, tmp_path):
    """A request that kills its worker, twice a second: each dead worker is
    replaced at once (no crash back-off for workers that served), the
    service keeps serving throughout, and the log names the request."""
    srv = start_lifecycle(servers, tmp_path, "-w", "4")
    srv.wait_booted(4)
    done = threading.Event()
    outcomes = {"ok": 0, "failed": []}

    def client():
        while not done.is_set():
            try:
                resp = rawhttp.request((srv.host, srv.port), "GET", "/", timeout=10)
                assert resp.status == 200, resp
                outcomes["ok"] += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                outcomes["failed"].append(repr(e))

    clients = [threading.Thread(target=client) for _ in range(2)]
    for t in clients:
        t.start()
    fewest = 4
    try:
        for _ in range(8):
            try:
                rawhttp.request((srv.host, srv.port), "GET", "/die", timeout=10)
            except Exception:  # noqa: BLE001 - the worker dies mid-request
                pass
            for _ in range(5):
                fewest = min(fewest, len(worker_pids(srv.pid)))
                time.sleep(0.1)
    finally:
        done.set()
        for t in clients:
            t.join(15)
    log = srv.stderr()
    # A dying worker takes with it the connections it holds: one accepted
    # just before the fatal request whose own request had not arrived yet.
    # Nothing else may fail.
    closed = "connection closed before any response bytes"
    assert all(closed in f for f in outcomes["failed"]), outcomes["failed"][:3]
    assert len(outcomes["failed"]) <= 8, outcomes["failed"]
    assert outcomes["ok"] > 50, outcomes
    assert fewest >= 3, "live workers fell to %d" % fewest
    assert "exited with status 1 while serving GET /die" in log, log[-2000:]
    assert "the next one starts in" not in log, log[-2000:]


def test_one_worker_that_crashes_in_a_request_is_replaced_at_once(servers, tmp_path):
    """With -w 1, a worker killed by a request soon after it started is
    replaced without delay, every time."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1")
    srv.wait_booted(1)
    for n in range(2, 5):
        try:
            srv.get("/die")
        except Exception:  # noqa: BLE001 - the worker dies mid-request
            pass
        srv.wait_booted(n, timeout=5)
        assert srv.get("/").status == 200
    assert "the next one starts in" not in srv.stderr()


# -- a child the app forked ------------------------------------------------------


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_child_the_app_forks_never_serves_or_holds_the_port(servers, tmp_path, threads):
    """An app that forks in a request and lets the child return: the client
    gets the worker's answer, the child leaves at once without touching
    the worker's sockets, and the port is free once the master exits
    (no process it started still holds it: not the zygote either)."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--threads", threads)
    (worker,) = srv.wait_booted(1)
    resp = srv.get("/fork")
    assert resp.status == 200 and resp.text == "parent %d" % worker, resp
    srv.wait_stderr("was forked by the application and returned into the server")
    wait_for(lambda: not children_of(worker), 10, message="the forked child to exit")
    for _ in range(20):
        assert srv.get("/").text == "pid %d" % worker
    # The master's own exit, nothing killed after it.
    srv.signal(signal.SIGTERM)
    srv.wait(30)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((srv.host, srv.port))
        s.listen()


# -- Python's exit -----------------------------------------------------------------


def test_a_graceful_exit_flushes_files_and_joins_threads(servers, tmp_path):
    """A worker that stops finalizes Python, as Gunicorn's do: module-level
    buffered files reach the disk and non-daemon threads finish."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--graceful-timeout", "30")
    (worker,) = srv.wait_booted(1)
    assert srv.get("/journal").text == "noted"
    assert srv.get("/thread?s=1").text == "started"
    stop_and_time(srv)
    assert (tmp_path / ("journal-%d" % worker)).read_text() == "written by a request in %d\n" % worker
    assert marks(tmp_path, "thread") == ["done after 1.0 s"], srv.stderr()


def test_pythons_exit_is_bounded_by_the_graceful_timeout(servers, tmp_path):
    """A non-daemon thread that never ends cannot keep a worker that stops
    on its own (--max-requests) alive past --graceful-timeout; the master
    would only notice it at --timeout."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--max-requests", "1", "--graceful-timeout", "2", "-t", "120")
    (worker,) = srv.wait_booted(1)
    assert srv.get("/thread?s=600").text == "started"
    srv.wait_stderr("Python's exit took over 2 s", timeout=15)
    wait_for(lambda: worker not in children_of(srv.pid), 15, message="the recycled worker to exit")
    assert srv.get("/").status == 200
    assert marks(tmp_path, "thread") == []


def test_a_connection_queued_at_a_final_stop_is_served(servers):
    """TERM while the only worker is in the app: a POST that waits in the
    socket's queue meanwhile is taken and served (with Connection: close)
    when the worker stops, not reset when the sockets stop listening."""
    srv = servers.start(["-w", "1", "--graceful-timeout", "10", "testapp:app"])
    srv.wait_booted(1)
    busy = rawhttp.Connection((srv.host, srv.port), timeout=10)
    busy.send(rawhttp.build_request("GET", "/pid?sleep=1.5"))
    time.sleep(0.3)
    queued = rawhttp.Connection((srv.host, srv.port), timeout=10)
    queued.send(rawhttp.build_request("POST", "/echo", body=b"queued at the stop"))
    time.sleep(0.2)
    srv.signal(signal.SIGTERM)
    assert busy.read_response().status == 200
    resp = read_response(queued)
    assert resp.status == 200 and resp.body == b"queued at the stop", resp
    assert "close" in resp.connection_tokens(), resp.headers
    assert srv.wait(15) == 0


def upgrade(srv, tmp_path):
    """USR2, then TERM to the old master once the new one serves: the new
    master's pid (its sockets were handed over, not bound)."""
    old = srv.pid
    os.kill(old, signal.SIGUSR2)
    pidfile = tmp_path / "rwsgi.pid.2"
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, message="the new master's pidfile")
    new = int(pidfile.read_text())
    wait_for(lambda: len(worker_pids(new)) == 1, 20, message="the new master's worker")
    os.kill(old, signal.SIGTERM)
    assert srv.wait(20) == 0
    return new


@pytest.mark.parametrize("master", ["started", "upgraded"])
def test_a_final_stop_refuses_new_connections_rather_than_reset_them(servers, tmp_path, master):
    """TERM while a request runs: a connection made once the worker has
    begun to stop is refused (a balancer sends it elsewhere), never
    accepted by the kernel, sent a request, and reset when the server
    exits. The same for a master started by USR2, whose sockets the old
    master handed over."""
    srv = start_lifecycle(servers, tmp_path, "-w", "1", "--threads", "2", "-p", str(tmp_path / "rwsgi.pid"))
    srv.wait_booted(1)
    pid = srv.pid if master == "started" else upgrade(srv, tmp_path)
    busy = rawhttp.Connection((srv.host, srv.port), timeout=10)
    busy.send(rawhttp.build_request("GET", "/sleep?s=2"))
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    try:
        late = socket.create_connection((srv.host, srv.port), timeout=5)
    except ConnectionRefusedError:
        late = None
    if late is not None:
        late.sendall(rawhttp.build_request("GET", "/"))
        try:
            answer = late.recv(100)
        except OSError as e:
            answer = repr(e)
        raise AssertionError("a connection made during the stop was accepted, then got %r" % answer)
    assert busy.read_response().status == 200
    wait_for(lambda: not pid_alive(pid), 15, message="the master to exit")

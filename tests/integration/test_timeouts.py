"""Stuck workers: the heartbeat (--timeout), --request-timeout and
--boot-timeout. A stuck worker is sent SIGABRT (CPython's faulthandler logs
every thread's stack), then killed, and replaced; the others keep serving."""

import time

from support import get_close, wait_for


def get(srv, path, timeout=10):
    return get_close((srv.host, srv.port), path, timeout)


def test_request_stuck_past_timeout_kills_and_replaces_the_worker(servers):
    srv = servers.start(["-w", "2", "-t", "2", "edge_app:app"])
    srv.wait_booted(2)
    started = time.monotonic()
    stuck = get(srv, b"/sleep?30", timeout=20)
    assert time.monotonic() - started < 15
    assert not stuck.startswith(b"HTTP/1.1 200"), stuck
    wait_for(lambda: "WORKER TIMEOUT" in srv.stderr(), 10, message="the timeout to be logged")
    log = srv.stderr()
    # faulthandler's dump names the function the worker was stuck in.
    wait_for(lambda: "most recent call first" in srv.stderr() and 'in app' in srv.stderr(), 10,
             message="the Python stack in the log")
    wait_for(lambda: len(srv.booted_pids()) >= 3, 15, message="a replacement worker")
    for _ in range(5):
        assert get(srv, b"/hello").startswith(b"HTTP/1.1 200"), log


def test_steady_progress_is_not_a_stuck_worker(servers):
    """A response streamed over 3 s, a chunk every 0.2 s, with -t 1: each
    write is progress, so the heartbeat does not fire."""
    srv = servers.start(["-w", "1", "-t", "1", "edge_app:app"])
    data = get(srv, b"/slowstream", timeout=20)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"14;" in data, data
    assert "WORKER TIMEOUT" not in srv.stderr()


def test_request_timeout_bounds_a_request_that_makes_progress(servers):
    srv = servers.start(["-w", "1", "-t", "30", "--request-timeout", "1", "edge_app:app"])
    data = get(srv, b"/slowstream", timeout=20)
    assert b"14;" not in data, data
    wait_for(lambda: "request took too long" in srv.stderr(), 10, message="the request timeout to be logged")


def test_boot_timeout(servers):
    srv = servers.start(["-w", "1", "--boot-timeout", "1", "slow_import_app:app"], ready=None)
    wait_for(lambda: "did not boot in time" in srv.stderr(), 15, message="the boot timeout to be logged")
    assert srv.alive()

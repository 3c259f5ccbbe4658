"""Regressions: ways a stop, a reload or a misbehaving app could lose a
request or harm other clients. Each test names the failure it guards."""

import os
import signal
import time

import rawhttp


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

"""--metrics-bind: the master's Prometheus text endpoint (parsed with
prometheus_client's own parser) and its /ready and /live probes, and that
idle or slow scrapers cannot hold it up."""

import os
import signal
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

import rawhttp
from support import exchange, free_port, wait_for, worker_pids


def start(servers, tmp_path, args, app="testapp:app", **kw):
    port = free_port()
    srv = servers.start(["--metrics-bind", "127.0.0.1:%d" % port] + args + [app], **kw)
    return srv, ("127.0.0.1", port)


def get(address, path):
    resp = rawhttp.request(address, "GET", path, timeout=5)
    return resp.status, resp.body.decode()


def metrics(address):
    """{(name, labels as a sorted tuple): value} from /metrics."""
    status, text = get(address, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(address, name, **labels):
    return metrics(address).get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_follow_requests_and_every_kind_of_worker_exit(servers, tmp_path):
    srv, m = start(servers, tmp_path, ["-w", "2", "--max-requests", "30"])
    wait_for(lambda: value(m, "rwsgi_workers", state="idle") == 2, 10, message="2 idle workers")
    assert value(m, "rwsgi_workers_wanted") == 2 and value(m, "rwsgi_ready") == 1
    before = value(m, "rwsgi_requests_total")
    for _ in range(10):
        assert srv.get("/hello").status == 200
    # (Counted once each response is out.)
    wait_for(lambda: value(m, "rwsgi_requests_total") == before + 10, 5, message="10 requests counted")

    victim = worker_pids(srv.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause="killed") == 1, 10, message="a killed worker counted")
    # Requests of gone workers still count.
    assert value(m, "rwsgi_requests_total") >= before + 10

    srv.signal(signal.SIGTTOU)
    wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause="retired") == 1, 10, message="TTOU's worker counted")
    assert value(m, "rwsgi_workers_wanted") == 1

    srv.signal(signal.SIGHUP)
    wait_for(lambda: value(m, "rwsgi_reloads_total") == 1 and value(m, "rwsgi_worker_exits_total", cause="retired") == 2,
             15, message="the reload counted")
    for _ in range(80):
        srv.get("/hello")
    wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause="recycled") >= 1, 10, message="a recycled worker")


def test_ready_only_while_a_current_worker_serves(servers, tmp_path):
    (tmp_path / "slow_boot.py").write_text(
        "import time\ntime.sleep(2)\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/slow':\n"
        "        time.sleep(3)\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )
    srv, m = start(servers, tmp_path, ["-w", "1", "--graceful-timeout", "10"], app="slow_boot:app",
                   chdir=str(tmp_path), ready=None)
    wait_for(lambda: _answers(m), 10, message="the metrics listener")
    assert get(m, "/ready")[0] == 503 and get(m, "/live")[0] == 200
    wait_for(lambda: get(m, "/ready")[0] == 200, 15, message="ready once the worker serves")
    slow = threading.Thread(target=lambda: exchange((srv.host, srv.port), b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", 15))
    slow.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    # Stopping: not ready, so a balancer stops sending; still live.
    wait_for(lambda: get(m, "/ready")[0] == 503, 5, message="not ready while stopping")
    assert get(m, "/live")[0] == 200
    slow.join()


def _answers(address):
    try:
        get(address, "/live")
        return True
    except OSError:
        return False


def test_idle_and_slow_scrapers_hold_nothing_up(servers, tmp_path):
    """20 connections that send nothing, and one that sends its request a
    byte at a time: scrapes, probes and the server itself go on."""
    srv, m = start(servers, tmp_path, ["-w", "1"])
    idle = [socket.create_connection(m) for _ in range(20)]
    try:
        trickle = socket.create_connection(m)
        for byte in b"GET /live HTTP/1.1\r\n":
            trickle.send(bytes([byte]))
        started = time.monotonic()
        assert get(m, "/ready")[0] == 200
        assert srv.get("/hello").status == 200
        assert time.monotonic() - started < 3
        trickle.send(b"\r\n")
        assert trickle.recv(100).startswith(b"HTTP/1.1 200")
        # The newest idle client, never displaced: let go at its 5 s.
        idle[-1].settimeout(10)
        assert idle[-1].recv(1) == b""
        assert time.monotonic() - started > 4
    finally:
        for s in idle:
            s.close()


def test_a_bad_metrics_address_is_one_error(tmp_path):
    from support import run_cli
    result = run_cli(["--metrics-bind", "not-an-address", "testapp:app"], timeout=20)
    assert result.returncode != 0
    assert "--metrics-bind not-an-address" in result.stderr


def test_metrics_on_a_unix_socket(servers, tmp_path):
    """`--metrics-bind unix:PATH`: the same answers, read with curl."""
    import subprocess
    sock = tmp_path / "metrics.sock"
    srv = servers.start(["-w", "1", "--metrics-bind", "unix:%s" % sock, "testapp:app"])
    def curl(path):
        return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(sock),
                               "http://x" + path], capture_output=True, text=True, timeout=10).stdout
    wait_for(lambda: curl("/ready") == "200", 10, message="ready over the unix socket")
    text = subprocess.run(["curl", "-s", "--unix-socket", str(sock), "http://x/metrics"], capture_output=True,
                          text=True, timeout=10).stdout
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"rwsgi_workers", "rwsgi_requests", "rwsgi_ready"} <= families, families
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    assert not sock.exists()

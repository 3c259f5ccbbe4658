"""--metrics-bind: the master's Prometheus text endpoint (parsed with
prometheus_client's own parser) and its /ready and /live probes, and that
idle or slow scrapers cannot hold it up."""

import os
import signal
import socket
import threading
import time

import pytest
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


# A small app for exact counts: answers /status/N with code N and the
# request's body, sleeps on /sleep?SECONDS, uses the CPU on /burn?SECONDS,
# and exits on /exit.
COUNT_APP = """
import os, time
def app(environ, start_response):
    path = environ["PATH_INFO"]
    body = environ["wsgi.input"].read()
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"]))
    if path == "/burn":
        until = time.process_time() + float(environ["QUERY_STRING"])
        while time.process_time() < until:
            pass
    if path == "/exit":
        os._exit(9)
    code = int(path.rsplit("/", 1)[-1]) if path.startswith("/status/") else 200
    start_response("%d Whatever" % code, [("Content-Length", str(len(body)))])
    return [body]
"""


def start_count_app(servers, tmp_path, args):
    (tmp_path / "count_app.py").write_text(COUNT_APP)
    return start(servers, tmp_path, args, app="count_app:app", chdir=str(tmp_path))


def total(address, name):
    """The sum of a metric's samples, whatever their labels."""
    return total_of(metrics(address), name)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_requests_by_status_class_duration_and_bytes_as_sent(servers, tmp_path, threads):
    """Every count checked against what the client sent and received:
    status classes (refused requests in 4xx), the histogram's buckets, the
    bytes both ways, the connections."""
    srv, m = start_count_app(servers, tmp_path, ["-w", "1", "--threads", threads])
    wait_for(lambda: value(m, "rwsgi_ready") == 1, 10, message="ready")
    before = metrics(m)
    sent = received = 0
    requests = [b"POST /status/200 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"b" * 100] * 4
    requests += [b"GET /status/302 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"] * 2
    requests += [b"GET /status/503 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"] * 3
    requests += [b"GET /sleep?0.3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    requests += [b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"] * 2
    for request in requests:
        answer = exchange((srv.host, srv.port), request, 10)
        assert answer.startswith(b"HTTP/1.1 "), answer
        sent += len(request)
        received += len(answer)
    # (Counted once each response is out.)
    wait_for(lambda: total(m, "rwsgi_requests_total") == total_of(before, "rwsgi_requests_total") + 12, 5,
             message="12 requests counted")
    now = metrics(m)

    def added(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return now.get(key, 0) - before.get(key, 0)

    assert [added("rwsgi_requests_total", status=c) for c in ("1xx", "2xx", "3xx", "4xx", "5xx")] == [0, 5, 2, 2, 3]
    # The 10 that reached the app are timed: the one that slept 0.3 s alone
    # past 0.25 s, not past 0.5 s.
    assert added("rwsgi_request_duration_seconds_count") == 10
    assert added("rwsgi_request_duration_seconds_bucket", le="0.25") == 9
    assert added("rwsgi_request_duration_seconds_bucket", le="0.5") == 10
    assert added("rwsgi_request_duration_seconds_bucket", le="+Inf") == 10
    assert 0.3 <= added("rwsgi_request_duration_seconds_sum") < 2.5
    assert added("rwsgi_request_bytes_total") == sent
    assert added("rwsgi_response_bytes_total") == received
    assert added("rwsgi_connections_accepted_total") == len(requests)
    # The live worker's memory and CPU time, from /proc.
    assert 5 << 20 < now[("rwsgi_workers_resident_memory_bytes", ())] < 1 << 30
    assert srv.get("/burn?0.3").status == 200
    assert value(m, "rwsgi_workers_cpu_seconds_total") - now[("rwsgi_workers_cpu_seconds_total", ())] >= 0.25


def total_of(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_follow_requests_and_every_kind_of_worker_exit(servers, tmp_path):
    srv, m = start_count_app(servers, tmp_path, ["-w", "2", "--max-requests", "30", "--timeout", "2"])
    wait_for(lambda: value(m, "rwsgi_workers", state="idle") == 2, 10, message="2 idle workers")
    assert value(m, "rwsgi_workers_wanted") == 2 and value(m, "rwsgi_ready") == 1
    # Every cause is there from the start, at 0.
    causes = {"recycled", "memory", "timeout", "crashed", "killed", "scaled_down", "reloaded", "stopped", "exited",
              "boot_failed"}
    assert {dict(labels)["cause"] for (name, labels) in metrics(m) if name == "rwsgi_worker_exits_total"} == causes
    ok = value(m, "rwsgi_requests_total", status="2xx")
    for _ in range(10):
        assert srv.get("/hello").status == 200
    ok += 10
    wait_for(lambda: value(m, "rwsgi_requests_total", status="2xx") == ok, 5, message="10 requests counted")
    cpu = value(m, "rwsgi_workers_cpu_seconds_total")

    def exits(cause, n, message):
        wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause=cause) == n, 15, message=message)

    victim = worker_pids(srv.pid)[0]
    os.kill(victim, signal.SIGKILL)
    exits("killed", 1, "a killed worker counted")
    # What gone workers counted still counts.
    assert value(m, "rwsgi_requests_total", status="2xx") == ok
    assert value(m, "rwsgi_workers_cpu_seconds_total") >= cpu
    assert value(m, "rwsgi_workers_started_total") == 3

    with pytest.raises(Exception):
        srv.get("/exit")
    exits("crashed", 1, "a crashed worker counted")
    with pytest.raises(Exception):
        srv.get("/sleep?30", timeout=15)
    exits("timeout", 1, "a worker killed as stuck counted")

    srv.signal(signal.SIGTTOU)
    exits("scaled_down", 1, "TTOU's worker counted")
    assert value(m, "rwsgi_workers_wanted") == 1

    srv.signal(signal.SIGHUP)
    exits("reloaded", 1, "the reloaded worker counted")
    assert value(m, "rwsgi_reloads_total") == 1
    # (The reload brought back -w 2.)
    for _ in range(80):
        srv.get("/hello")
    wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause="recycled") >= 1, 15,
             message="a worker recycled by --max-requests counted")
    assert value(m, "rwsgi_worker_exits_total", cause="memory") == 0


def test_a_worker_over_its_memory_limit_is_counted_so(servers, tmp_path):
    srv, m = start_count_app(servers, tmp_path, ["-w", "1", "--max-worker-memory", "1"])
    wait_for(lambda: value(m, "rwsgi_ready") == 1, 10, message="ready")
    # (Every request recycles the worker: the readiness probe's too.)
    assert srv.get("/hello").status == 200
    wait_for(lambda: value(m, "rwsgi_worker_exits_total", cause="memory") >= 1, 15, message="the memory recycle counted")
    assert value(m, "rwsgi_worker_exits_total", cause="recycled") == 0


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

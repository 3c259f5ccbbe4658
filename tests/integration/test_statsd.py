"""--statsd-host, --statsd-prefix, --dogstatsd-tags, --enable-backlog-metric:
a UDP listener stands in for the collector, and the datagrams rwsgi sends
are checked against the requests made, and against what Gunicorn sends
for the same requests with the same flags."""

import re
import socket
import threading
import time

import pytest

import rawhttp
from support import exchange, gunicorn, wait_for


class Collector:
    """A statsd collector: every datagram received, as text."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                self.lines.append(self.sock.recv(65536).decode())
            except socket.timeout:
                pass

    def named(self, pattern):
        return [l for l in list(self.lines) if re.match(pattern, l)]

    def quiet(self, seconds=0.5):
        """Wait until nothing has come for `seconds` (a readiness probe's
        datagrams), then forget what came."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            count = len(self.lines)
            time.sleep(seconds)
            if len(self.lines) == count:
                self.lines.clear()
                return
        raise AssertionError("datagrams never stopped coming")

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def shape(line):
    """A datagram with its duration value blanked."""
    return re.sub(r"duration:[0-9.]+\|", "duration:N|", line)


def requests_of(address):
    for path in ("/hello", "/hello", "/status/404", "/crash"):
        raw = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode()
        exchange(address, raw)


def test_request_metrics_as_gunicorn_sends_them(servers, tmp_path, collector):
    flags = ["-w", "1", "--statsd-host", "127.0.0.1:%d" % collector.port, "--statsd-prefix", "app..",
             "--dogstatsd-tags", "env:test,team"]
    srv = servers.start(flags + ["testapp:app"])
    wait_for(lambda: collector.named(r"app\.gunicorn\.workers:1\|g"), 10, message="the workers gauge")
    collector.quiet()
    requests_of((srv.host, srv.port))
    wait_for(lambda: len([l for l in collector.lines if ".request" in l]) == 12, 10, message="3 datagrams x 4 requests")
    ours = sorted(shape(l) for l in collector.lines if ".request" in l)
    assert ours.count("app.gunicorn.requests:1|c|@1.0|#env:test,team") == 4
    assert ours.count("app.gunicorn.request.status.200:1|c|@1.0|#env:test,team") == 2
    assert ours.count("app.gunicorn.request.status.404:1|c|@1.0|#env:test,team") == 1
    assert ours.count("app.gunicorn.request.status.500:1|c|@1.0|#env:test,team") == 1
    assert ours.count("app.gunicorn.request.duration:N|ms|#env:test,team") == 4
    # The app's exception was logged: Gunicorn's exception counter.
    wait_for(lambda: collector.named(r"app\.gunicorn\.log\.exception:1\|c"), 10, message="the exception counter")

    collector.lines.clear()
    with gunicorn(flags + ["testapp:app"], tmp_path / "gunicorn.log") as address:
        wait_for(lambda: collector.named(r"app\.gunicorn\.workers:1\|g"), 10, message="Gunicorn's workers gauge")
        collector.quiet()
        requests_of(address)
        wait_for(lambda: len([l for l in collector.lines if ".request" in l]) == 12, 10, message="Gunicorn's datagrams")
        theirs = sorted(shape(l) for l in collector.lines if ".request" in l)
    assert ours == theirs


def test_workers_gauge_follows_ttin_and_the_backlog_is_sent(servers, collector):
    import signal
    srv = servers.start(["-w", "1", "--statsd-host", "127.0.0.1:%d" % collector.port, "--enable-backlog-metric",
                         "testapp:app"])
    wait_for(lambda: collector.named(r"gunicorn\.workers:1\|g"), 10, message="workers 1")
    srv.signal(signal.SIGTTIN)
    wait_for(lambda: collector.named(r"gunicorn\.workers:2\|g"), 10, message="workers 2")
    wait_for(lambda: collector.named(r"gunicorn\.backlog:\d+\|h$"), 10, message="the backlog histogram")


def test_a_collector_that_is_down_costs_nothing(servers):
    """Nothing listens on the port: requests are served as fast as ever."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    srv = servers.start(["-w", "1", "--statsd-host", "127.0.0.1:%d" % port, "testapp:app"])
    started = time.monotonic()
    for _ in range(50):
        assert rawhttp.request((srv.host, srv.port), "GET", "/hello").status == 200
    assert time.monotonic() - started < 10
    assert "Traceback" not in srv.stderr()

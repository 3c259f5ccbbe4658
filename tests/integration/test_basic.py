"""The getting-started example and pre-fork workers."""

import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import EXAMPLES_DIR


def test_get_started_with_four_workers(servers):
    srv = servers.start(["-w", "4", "get_started:hello_world"], chdir=EXAMPLES_DIR)

    resp = srv.get("/")
    assert resp.status == 200, resp
    assert resp.body == b"Hello world!\n"
    assert resp.header("Content-Type") == "text/plain"

    pids = srv.wait_booted(4)
    time.sleep(0.5)  # no extra (re)boots may follow
    pids = srv.booted_pids()
    assert len(pids) == 4, srv.stderr()
    assert len(set(pids)) == 4
    assert srv.pid not in pids

    listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)", srv.stderr())
    assert listening, srv.stderr()
    assert int(listening.group(1)) == srv.port
    assert int(listening.group(2)) == srv.pid


def test_error_log_line_format(servers):
    srv = servers.start(["get_started:hello_world"], chdir=EXAMPLES_DIR)
    srv.wait_booted(1)
    line = next(l for l in srv.stderr().splitlines() if "Booting worker with pid" in l)
    match = re.match(
        r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] \[INFO\] Booting worker with pid: (\d+)$", line
    )
    assert match, line


def test_requests_reach_all_four_workers(servers):
    srv = servers.start(["-w", "4", "testapp:app"])
    booted = set(srv.wait_booted(4))

    def fetch_pid(_):
        resp = srv.get("/pid?sleep=0.2")
        assert resp.status == 200, resp
        return int(resp.body)

    seen = set()
    deadline = time.monotonic() + 20
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Concurrent slow requests on new connections keep workers busy, so
        # the others have to accept the remaining connections.
        while len(seen) < 4 and time.monotonic() < deadline:
            seen.update(pool.map(fetch_pid, range(8)))
    assert seen == booted, "pids answering %s, booted %s" % (sorted(seen), sorted(booted))
    assert srv.pid not in seen


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_client(servers):
    srv = servers.start(["testapp:app"])
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", srv.url("/hello")],
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"Hello, world!\n"

    payload = b"posted with curl\n" * 1000
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--data-binary", "@-", "-H", "Content-Type: text/x-curl", srv.url("/echo")],
        input=payload,
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload

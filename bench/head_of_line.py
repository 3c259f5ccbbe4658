"""Does a fast request wait behind another client's slow one? Run by hand:

    python3 bench/head_of_line.py [--binary target/release/rwsgi] [--seconds 8]

Two loads, each against rwsgi and Gunicorn in the modes given below:

- mixed: 4 workers; an app whose /slow sleeps 1 s and /fast returns at
  once; 2 clients loop /slow on new connections (4 with 2 threads), 8
  keep-alive clients send /fast every 10 ms. Counted: fast requests, those
  over 100 ms, the slowest.
- collateral: 2 workers, --timeout 3; one client's request hangs its
  worker until the master kills it; each round, 6 other keep-alive
  clients whose connections sit in that worker send a request. Counted:
  those answered and those reset.

Gunicorn comes from bench/.venv (bench/run.sh makes it), rwsgi from
--binary. Results print as a Markdown table.
"""

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = '''
import os, time
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(1)
    elif path == "/hang":
        time.sleep(3600)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command, port, workdir):
    proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/fast")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit("server did not start: %s" % " ".join(command))


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def mixed(port, seconds, slow_clients):
    until = time.monotonic() + seconds
    latencies, errors = [], []

    def slow():
        while time.monotonic() < until:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", "/slow")
                conn.getresponse().read()
            except OSError:
                errors.append(1)
            conn.close()

    def fast():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                conn.request("GET", "/fast")
                conn.getresponse().read()
                latencies.append(time.monotonic() - started)
            except (OSError, http.client.HTTPException):
                errors.append(1)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            time.sleep(0.01)

    threads = [threading.Thread(target=slow) for _ in range(slow_clients)] + [threading.Thread(target=fast) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), sum(1 for x in latencies if x > 0.1), max(latencies), len(errors)


def collateral(port, rounds):
    """Each round: 6 keep-alive connections in the worker that then hangs."""
    answered = reset = 0
    for _ in range(rounds):
        conns = {}
        for _ in range(40):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/fast")
            pid = conn.getresponse().read()
            conns.setdefault(pid, []).append(conn)
        pid, mine = max(conns.items(), key=lambda kv: len(kv[1]))
        hang, innocents = mine[0], mine[1:7]
        hang.request("GET", "/hang")
        time.sleep(0.3)
        for conn in innocents:
            conn.request("GET", "/fast")
        for conn in innocents:
            try:
                conn.getresponse().read()
                answered += 1
            except (OSError, http.client.HTTPException):
                reset += 1
        for group in conns.values():
            for conn in group:
                conn.close()
        time.sleep(4)  # the hung worker is killed and replaced
    return answered, reset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(HERE.parent / "target/release/rwsgi"))
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="collateral rounds")
    args = ap.parse_args()
    gunicorn = str(HERE / ".venv/bin/gunicorn")
    workdir = tempfile.mkdtemp(prefix="rwsgi-hol-")
    Path(workdir, "holapp.py").write_text(APP)
    servers = [
        ("rwsgi `-w 4`", [args.binary, "-w", "4"], 2),
        ("rwsgi `-w 4 --threads 2`, 4 slow clients", [args.binary, "-w", "4", "--threads", "2"], 4),
        ("rwsgi `-w 4 --handoff-after 0` (hand-off off)", [args.binary, "-w", "4", "--handoff-after", "0"], 2),
        ("Gunicorn sync `-w 4`", [gunicorn, "-w", "4"], 2),
        ("Gunicorn gthread `-w 4 --threads 1`", [gunicorn, "-w", "4", "-k", "gthread", "--threads", "1"], 2),
        ("Gunicorn gthread `-w 4 --threads 2`, 4 slow clients", [gunicorn, "-w", "4", "-k", "gthread", "--threads", "2"], 4),
    ]
    print("| server | fast requests | over 100 ms | max | errors |\n|---|---:|---:|---:|---:|")
    for label, command, slow_clients in servers:
        port = free_port()
        proc = start(command + ["-b", "127.0.0.1:%d" % port, "holapp:app"], port, workdir)
        try:
            n, over, worst, errors = mixed(port, args.seconds, slow_clients)
        finally:
            stop(proc)
        print("| %s | %d | %d | %.0f ms | %d |" % (label, n, over, worst * 1000, errors))
        sys.stdout.flush()
    print("\n| server, `-w 2 --timeout 3` | innocent requests answered | reset |\n|---|---:|---:|")
    for label, command in [
        ("rwsgi", [args.binary, "-w", "2", "--timeout", "3", "--keep-alive", "30"]),
        ("rwsgi `--handoff-after 0`", [args.binary, "-w", "2", "--timeout", "3", "--keep-alive", "30", "--handoff-after", "0"]),
    ]:
        port = free_port()
        proc = start(command + ["-b", "127.0.0.1:%d" % port, "holapp:app"], port, workdir)
        try:
            answered, reset = collateral(port, args.rounds)
        finally:
            stop(proc)
        print("| %s | %d | %d |" % (label, answered, reset))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

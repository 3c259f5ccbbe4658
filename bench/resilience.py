#!/usr/bin/env python3
"""Requests lost to reloads and crashing requests, for one rwsgi binary.

    python3 bench/resilience.py [--binary target/release/rwsgi] [--scenario hup|death|all]

Run by hand (it takes about 30 s) against two binaries to compare them;
it prints what it counted. Scenarios:

- hup: `-w 2 --keep-alive 75`; 8 keep-alive clients loop requests that
  take 50 ms (GET and POST alternately), reconnecting only where the
  server said `Connection: close` or closed an idle connection; 5 HUPs
  one second apart. A request sent and never answered is lost.
- death: `-w 4`; a request that kills its worker (`os._exit`) twice a
  second for 4 s, while 2 clients loop requests on new connections; the
  number of live workers is sampled every 100 ms.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

APP = r'''
import os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/die":
        os._exit(1)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    if path == "/slow":
        time.sleep(0.05)
    data = b"ok " + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, workdir, port, args):
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen([binary, "-b", "127.0.0.1:%d" % port, "--chdir", str(workdir)] + args + ["res_app:app"],
                            stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start:\n" + (workdir / "server.log").read_text())


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def read_response(sock):
    """(closes, ok): the server's answer; raises EOFError if none came."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed in the body")
        body += chunk
    return b"connection: close" in head.lower(), head.startswith(b"HTTP/1.1 200")


class KeepAliveClient(threading.Thread):
    def __init__(self, port, done, counts):
        super().__init__(daemon=True)
        self.port, self.done, self.counts = port, done, counts

    def run(self):
        sock, n = None, 0
        while not self.done.is_set():
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            n += 1
            if n % 2:
                req = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            else:
                req = b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata"
            try:
                sock.sendall(req)
            except OSError:
                # Closed while idle: the client may retry on a new connection.
                sock.close()
                sock = None
                continue
            try:
                closes, ok = read_response(sock)
                self.counts["ok" if ok else "failed"] += 1
                if closes:
                    sock.close()
                    sock = None
            except (OSError, EOFError):
                self.counts["failed"] += 1
                sock.close()
                sock = None


def live_workers(master):
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path("/proc/%s/stat" % entry).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            n += int(fields[1]) == master and fields[0] != "Z"
    return n


def scenario_hup(binary, workdir):
    port = free_port()
    proc = start(binary, workdir, port, ["-w", "2", "--keep-alive", "75"])
    done, counts = threading.Event(), {"ok": 0, "failed": 0}
    clients = [KeepAliveClient(port, done, counts) for _ in range(8)]
    for c in clients:
        c.start()
    for _ in range(5):
        time.sleep(1)
        os.kill(proc.pid, signal.SIGHUP)
    time.sleep(2)
    done.set()
    for c in clients:
        c.join(15)
    stop(proc)
    print("hup: %d requests, %d lost (keep-alive clients, 5 HUPs)" % (counts["ok"] + counts["failed"], counts["failed"]))


def scenario_death(binary, workdir):
    port = free_port()
    proc = start(binary, workdir, port, ["-w", "4"])
    done, counts = threading.Event(), {"ok": 0, "failed": 0}

    def client():
        while not done.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    counts["ok" if read_response(s)[1] else "failed"] += 1
            except (OSError, EOFError):
                counts["failed"] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < 6:
        elapsed = time.monotonic() - started
        if elapsed < 4 and int(elapsed * 10) % 5 == 0:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"GET /die HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    s.recv(10)
            except OSError:
                pass
        samples.append(live_workers(proc.pid))
        time.sleep(0.1)
    done.set()
    for t in threads:
        t.join(15)
    log = (workdir / "server.log").read_text()
    stop(proc)
    print("death: %d requests, %d failed; live workers min %d, median %s, last %d; back-off lines: %d"
          % (counts["ok"] + counts["failed"], counts["failed"], min(samples), statistics.median(samples),
             samples[-1], log.count("the next one starts in")))
    print("       live workers every 100 ms: %s" % "".join(str(min(n, 9)) for n in samples))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "rwsgi"))
    ap.add_argument("--scenario", choices=["hup", "death", "all"], default="all")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rwsgi-resilience-") as tmp:
        workdir = Path(tmp)
        (workdir / "res_app.py").write_text(APP)
        print("binary: %s" % args.binary)
        if args.scenario in ("hup", "all"):
            scenario_hup(args.binary, workdir)
        if args.scenario in ("death", "all"):
            scenario_death(args.binary, workdir)


if __name__ == "__main__":
    sys.exit(main())

"""Memory and boot time of rwsgi and Gunicorn, with and without --preload,
side by side in one run (issue: "--preload that still reloads code").

For each server and mode, on the example Django project and on a larger
Django app (its admin, auth, sessions and messages imported), with 8
workers:

- boot: seconds from starting the server until every worker has imported
  the app (each one's post_worker_init hook writes its pid);
- PSS: the total proportional set size of the server's whole process tree
  (master, zygote or hook processes, workers), after warm-up requests;
- HUP: seconds from HUP until 8 new workers have booted and the old ones
  are gone.

    python3 bench/memory.py [--workers 8] [--rounds 2] [--out bench/MEMORY.md]

Uses the project's test virtualenv (.venv: Django and Gunicorn 27) and the
release binary (cargo build --release). Run on an idle machine.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
RWSGI = ROOT / "target" / "release" / "rwsgi"
HOOKS = '''import os
def post_worker_init(worker):
    with open(os.environ["BENCH_MARKS"], "a") as f:
        f.write("%d\\n" % os.getpid())
'''
APPS = {
    "django": (ROOT / "examples" / "django_project", "myproject.wsgi:application"),
    "django-admin": (ROOT / "bench", "django_admin:application"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """`pid` and every process below it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(c for c, parent in parents.items() if parent == p)
    return found


def alive(pid):
    """Whether `pid` runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total


def get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def marks(path):
    try:
        return [int(l) for l in path.read_text().split()]
    except OSError:
        return []


def wait(predicate, limit=120):
    until = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > until:
            raise RuntimeError("timed out")
        time.sleep(0.01)


def measure(server, preload, app, workers, tmp):
    cwd, target = APPS[app]
    port = free_port()
    conf = tmp / "hooks.py"
    conf.write_text(HOOKS)
    marks_file = tmp / ("marks-%s-%s-%s" % (server, preload, time.time()))
    env = dict(os.environ, BENCH_MARKS=str(marks_file), PYTHONPATH=str(ROOT / "bench"))
    flags = ["-w", str(workers), "-b", "127.0.0.1:%d" % port, "-c", str(conf)] + (["--preload"] if preload else [])
    if server == "gunicorn":
        cmd = [str(VENV / "bin" / "gunicorn")] + flags + [target]
    else:
        cmd = [str(RWSGI), "--virtualenv", str(VENV)] + flags + [target]
        if server == "rwsgi-no-zygote":
            env["RWSGI_NO_ZYGOTE"] = "1"
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait(lambda: len(set(marks(marks_file))) >= workers)
        boot = time.monotonic() - started
        for _ in range(20 * workers):
            get(port)
        time.sleep(0.5)
        pss = pss_kib(descendants(proc.pid))
        before = set(marks(marks_file))
        hup = time.monotonic()
        os.kill(proc.pid, signal.SIGHUP)
        wait(lambda: len(set(marks(marks_file)) - before) >= workers and not any(alive(p) for p in before))
        reload_s = time.monotonic() - hup
        get(port)
        return boot, pss, reload_s
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--apps", default="django,django-admin")
    parser.add_argument("--servers", default="rwsgi,gunicorn,rwsgi-no-zygote")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for app in args.apps.split(","):
            for server in args.servers.split(","):
                for preload in (False, True):
                    if server == "rwsgi-no-zygote" and preload:
                        continue
                    runs = [measure(server, preload, app, args.workers, Path(tmp)) for _ in range(args.rounds)]
                    boot, pss, hup = (statistics.median(r[i] for r in runs) for i in range(3))
                    row = (app, server + (" --preload" if preload else ""), pss / 1024, boot, hup)
                    print("%-13s %-26s PSS %6.1f MiB  boot %5.2f s  HUP %5.2f s" % row, flush=True)
                    rows.append(row)
    table = ["| app | server | total PSS | start to all booted | HUP to all replaced |", "|---|---|---:|---:|---:|"]
    table += ["| %s | %s | %.1f MiB | %.2f s | %.2f s |" % r for r in rows]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text("# Memory and boot, %d workers (bench/memory.py, median of %d)\n\n%s"
                                  % (args.workers, args.rounds, text))


if __name__ == "__main__":
    sys.exit(main())

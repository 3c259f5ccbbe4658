#!/usr/bin/env python3
"""Side-by-side benchmark of rwsgi and its peers, one core each.

Run it through `bash bench/run.sh` (it installs wrk, nginx and the venv,
builds rwsgi, then runs this file with bench/.venv's Python). Options:

    --quick               1 round, 3 s per run (a smoke test of the harness)
    --rounds N            rounds per scenario (default 3; medians reported)
    --duration S          seconds per measured wrk run (default 10)
    --only a,b            servers to run (rwsgi gunicorn granian bjoern uwsgi
                          meinheld waitress); nginx is the limit, see --scenarios
    --scenarios a,b       scenarios to run (see SCENARIOS; default all)
    --list                print the servers and scenarios and exit
    --baseline PATH       also run another rwsgi binary (say, one built from
                          the commit before a change) right after each rwsgi
                          run, labelled "(baseline)": an A/B of the change
    --out DIR             where the results go (default bench/)

Method, per scenario: for each round, each server in turn (A B A B ...):
start it fresh with `taskset -c 0` (its children inherit the mask), wait
until it answers the scenario's request correctly, warm it up with a 1 s
wrk run, read the CPU time of its whole process tree from /proc/PID/stat,
run `taskset -c 1 wrk -t1 -cC -dD --latency`, read the CPU time again, read
VmRSS of its processes, stop it (its process group: TERM, then KILL).
The medians over the rounds go into bench/RESULTS.md, bench/results.json
(every run) and bench/results.png.
"""

import argparse
import datetime
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VBIN = VENV / "bin"
RWSGI = ROOT / "target" / "release" / "rwsgi"
# Another rwsgi binary run beside this tree's (--baseline): an A/B of a change.
RWSGI_BASE = None
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
UWSGI_PARAMS = "/etc/nginx/uwsgi_params"

SERVER_CPU = "0"  # the server (and nginx in front of it) run here
CLIENT_CPU = "1"  # wrk runs here
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0
WRK_TIMEOUT = "2s"  # wrk's per-request timeout; slower requests count as errors

ALL_SERVERS = ["rwsgi", "gunicorn", "granian", "bjoern", "uwsgi", "meinheld", "waitress"]
# pip distribution that provides each peer (rwsgi is built from this tree).
PEER_DIST = {
    "gunicorn": "gunicorn",
    "granian": "granian",
    "bjoern": "bjoern",
    "uwsgi": "pyuwsgi",
    "meinheld": "meinheld",
    "waitress": "waitress",
}

HELLO = b"Hello, World!"
POST_BODY = b"abcdefghijklmnop" * 1024  # the body bench/post16k.lua sends


# ---------------------------------------------------------------------------
# scenarios


def entry(server, threads=1, label=None):
    return {"server": server, "threads": threads, "label": label or server}


def http_entries():
    return [entry(s) for s in ALL_SERVERS]


def with_baseline(entries):
    """With --baseline, each rwsgi entry followed by the same entry run
    with the baseline binary (labelled "... (baseline)"), so the two
    alternate within every round."""
    if RWSGI_BASE is None:
        return entries
    out = []
    for e in entries:
        out.append(e)
        if e["server"] == "rwsgi":
            out.append(dict(e, server="rwsgi-base", label=e["label"] + " (baseline)"))
    return out


SCENARIOS = {
    "hello_c1": dict(title="Hello world, 1 connection", app="hello", conns=1),
    "hello_c16": dict(title="Hello world, 16 keep-alive connections", app="hello", conns=16),
    "hello_c256": dict(title="Hello world, 256 connections", app="hello", conns=256),
    "big64k": dict(title="64 KiB response, 16 connections", app="big", conns=16),
    "post16k": dict(title="16 KiB POST echoed back (reads wsgi.input), 16 connections", app="echo", conns=16, lua="post16k.lua"),
    "stream": dict(title="Streamed response (generator of 8 x 1 KiB, no Content-Length), 16 connections", app="stream", conns=16),
    "flask": dict(title="Flask hello world, 16 connections", app="flask_app", conns=16),
    "nginx_uwsgi": dict(
        title="nginx in front over uwsgi_pass (unix socket), hello world, 16 connections",
        app="hello",
        conns=16,
        front="nginx",
        entries=[entry("rwsgi", label="rwsgi --protocol uwsgi"), entry("uwsgi", label="uwsgi --socket")],
    ),
    "threads_io": dict(
        title="I/O-bound app (sleeps 10 ms), 16 threads in one worker, 64 connections",
        app="sleep10",
        conns=64,
        target_rps=0.9 * 16 * 100,
        entries=[
            entry("rwsgi", 16, "rwsgi --threads 16"),
            entry("gunicorn", 16, "gunicorn gthread --threads 16"),
            entry("granian", 16, "granian --blocking-threads 16"),
            entry("uwsgi", 16, "uwsgi --threads 16"),
            entry("waitress", 16, "waitress --threads 16"),
        ],
    ),
    "threads_hello": dict(
        title="Hello world, rwsgi --threads 4 vs --threads 1, 16 connections",
        app="hello",
        conns=16,
        entries=[entry("rwsgi", 1, "rwsgi --threads 1"), entry("rwsgi", 4, "rwsgi --threads 4")],
    ),
    "limits": dict(title="Limits: the Python call alone, and nginx's static return 200", special=True),
}
for _s in SCENARIOS.values():
    _s.setdefault("entries", None)


# ---------------------------------------------------------------------------
# /proc


def proc_stat(pid):
    """(ppid, utime+stime+cutime+cstime ticks) of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): field N is rest[N - 3].
    ppid = int(rest[1])
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return ppid, ticks


def all_ppids():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                out[int(name)] = st[0]
    return out


def process_tree(root):
    """root and all its descendants that are alive, root first."""
    ppids = all_ppids()
    children = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    if root not in ppids:
        return []
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def tree_cpu_ticks(root):
    """utime+stime of root and every descendant, plus the times of children
    they have already reaped (cutime+cstime), in clock ticks."""
    total = 0
    for pid in process_tree(root):
        st = proc_stat(pid)
        if st:
            total += st[1]
    return total


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_times(cpu):
    """Tick counters of one CPU from /proc/stat: user, nice, system, idle,
    iowait, irq, softirq, steal."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                return dict(zip(names, (int(v) for v in line.split()[1:9])))
    return dict.fromkeys(names, 0)


def core_usage(before, after, own_ticks):
    """How core SERVER_CPU spent a run, in % of its time: the processes
    measured (own_ticks), other tasks, interrupts/softirqs (the kernel's
    networking partly lands there), steal (the hypervisor), idle."""
    d = {k: after[k] - before[k] for k in before}
    total = max(sum(d.values()), 1)
    tasks = d["user"] + d["nice"] + d["system"]
    return {
        "measured_pct": 100.0 * own_ticks / total,
        "other_tasks_pct": 100.0 * max(tasks - own_ticks, 0) / total,
        "irq_pct": 100.0 * (d["irq"] + d["softirq"]) / total,
        "steal_pct": 100.0 * d["steal"] / total,
        "idle_pct": 100.0 * (d["idle"] + d["iowait"]) / total,
    }


# ---------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A command started in its own session, pinned to SERVER_CPU."""

    def __init__(self, label, cmd, cwd, env, logdir):
        self.label = label
        self.cmd = [str(c) for c in cmd]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        self.logpath = Path(logdir) / ("%s-%d.log" % (safe, int(time.time() * 1000)))
        self.logfile = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU] + self.cmd,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid  # taskset execs the command: same pid

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=15):
        try:
            self.logfile.flush()
            lines = self.logpath.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self):
        pids = process_tree(self.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            for pid in pids:  # a child that left the process group
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (STOP_TIMEOUT if sig == signal.SIGTERM else 3)
            while time.monotonic() < deadline:
                self.proc.poll()
                if not any(os.path.exists("/proc/%d" % p) and proc_state(p) != "Z" for p in pids):
                    break
                time.sleep(0.05)
            else:
                continue
            break
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        self.logfile.close()


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        return data[data.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return "X"


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = "%s:%s" % (VBIN, env.get("PATH", "/usr/bin:/bin"))
    for key in ("WEB_CONCURRENCY", "PORT", "RWSGI_CMD_ARGS", "GUNICORN_CMD_ARGS"):
        env.pop(key, None)
    return env


def server_command(server, app, threads=1, port=None, uwsgi_socket=None):
    """The command line that runs `server` with exactly one worker process
    in its fastest honest mode, access logging off. port: serve HTTP on
    HOST:port; uwsgi_socket: serve the uwsgi protocol on that unix socket."""
    target = "flask_hello:app" if app == "flask_app" else "apps:%s" % app
    if server in ("rwsgi", "rwsgi-base"):
        bind = "unix:%s" % uwsgi_socket if uwsgi_socket else "%s:%d" % (HOST, port)
        binary = RWSGI if server == "rwsgi" else RWSGI_BASE
        cmd = [binary, "-w", "1", "--threads", str(threads), "-b", bind, "--chdir", BENCH,
               "--virtualenv", VENV, "--log-level", "warning"]
        if uwsgi_socket:
            cmd += ["--protocol", "uwsgi"]
        return cmd + [target]
    if server == "gunicorn":
        cmd = [VBIN / "gunicorn", "-w", "1", "-b", "%s:%d" % (HOST, port), "--chdir", BENCH,
               "--log-level", "warning"]
        if threads > 1:
            cmd += ["-k", "gthread", "--threads", str(threads)]
        else:
            cmd += ["-k", "sync"]
        return cmd + [target]
    if server == "granian":
        return [VBIN / "granian", "--interface", "wsgi", "--host", HOST, "--port", str(port),
                "--workers", "1", "--blocking-threads", str(threads), "--runtime-threads", "1",
                "--http", "1", "--no-ws", "--log-level", "warning", "--working-dir", BENCH, target]
    if server == "bjoern":
        assert threads == 1
        return [VBIN / "python", BENCH / "runners.py", "bjoern", app, HOST, str(port)]
    if server == "meinheld":
        assert threads == 1
        return [VBIN / "python", BENCH / "runners.py", "meinheld", app, HOST, str(port)]
    if server == "uwsgi":
        cmd = [VBIN / "uwsgi"]
        if uwsgi_socket:
            cmd += ["--socket", uwsgi_socket]
        else:
            # uWSGI's own HTTP parser in the worker (no http router process).
            # Not --http11-socket: with keep-alive, a synchronous worker
            # serves one connection until it closes and the others starve
            # (with 16 connections only one got answers).
            cmd += ["--http-socket", "%s:%d" % (HOST, port)]
        cmd += ["--master", "--processes", "1", "--module", target, "--chdir", BENCH,
                "--disable-logging", "--die-on-term", "--need-app", "--listen", "1024",
                "--ignore-sigpipe", "--ignore-write-errors", "--disable-write-exception"]
        if threads > 1:
            cmd += ["--threads", str(threads)]
        return cmd
    if server == "waitress":
        # threads=1: one request thread next to the I/O loop, waitress's
        # fastest single-worker setting. connection-limit 1000 (default 100)
        # so 256 clients are served rather than left waiting in the backlog
        # (rwsgi holds 1000 per worker too).
        return [VBIN / "waitress-serve", "--listen=%s:%d" % (HOST, port), "--threads=%d" % threads,
                "--connection-limit=1000", target]
    raise ValueError(server)


# ---------------------------------------------------------------------------
# nginx


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {host}:{port} backlog=4096;
        location / {{
{location}
        }}
    }}
}}
"""


def start_nginx(tmpdir, port, location, logdir):
    conf = Path(tmpdir) / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=tmpdir,
            host=HOST,
            port=port,
            location=location,
        )
    )
    return Server("nginx", [NGINX, "-c", conf, "-p", tmpdir], tmpdir, dict(os.environ), logdir)


# ---------------------------------------------------------------------------
# probing and wrk


def expected_response(app):
    """(method, body to send, check(body) -> error or None)"""
    if app in ("hello", "flask_app", "sleep10"):
        return "GET", None, lambda b: None if b == HELLO else "body %r" % b[:60]
    if app == "big":
        return "GET", None, lambda b: None if b == b"x" * 65536 else "body of %d bytes" % len(b)
    if app == "echo":
        return "POST", POST_BODY, lambda b: None if b == POST_BODY else "echoed %d bytes, not the 16 KiB sent" % len(b)
    if app == "stream":
        return "GET", None, lambda b: None if b == b"y" * 8192 else "body of %d bytes" % len(b)
    raise ValueError(app)


def probe(port, app):
    """One request over HTTP; None when the right answer came back, else why."""
    method, body, check = expected_response(app)
    conn = http.client.HTTPConnection(HOST, port, timeout=3)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body else {}
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            return "status %d" % resp.status
        return check(data)
    except (OSError, http.client.HTTPException) as exc:
        return "%s: %s" % (type(exc).__name__, exc)
    finally:
        conn.close()


def wait_ready(servers, port, app, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for s in servers:
            if not s.alive():
                raise RuntimeError("%s exited with status %s:\n%s" % (s.label, s.proc.returncode, s.log_tail()))
        last = probe(port, app)
        if last is None:
            return
        time.sleep(0.1)
    raise RuntimeError("not ready after %.0f s (%s):\n%s" % (timeout, last, "\n".join(s.log_tail() for s in servers)))


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    res = {"rps": None, "requests": 0, "p50_ms": None, "p75_ms": None, "p90_ms": None, "p99_ms": None,
           "errors": 0, "non2xx": 0, "socket_errors": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^\s+Latency\s+(\S+)", out, re.M)
    res["avg_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            res["p%s_ms" % pct] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    # wrk counts a closed keep-alive connection as a read error; connect
    # errors, timeouts and non-2xx answers are real failures.
    se = res["socket_errors"]
    res["errors"] = res["non2xx"] + se.get("connect", 0) + se.get("timeout", 0) + se.get("write", 0)
    return res


def run_wrk(port, conns, duration, lua=None):
    cmd = ["taskset", "-c", CLIENT_CPU, WRK, "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency",
           "--timeout", WRK_TIMEOUT]
    if lua:
        cmd += ["-s", str(BENCH / lua)]
    cmd.append("http://%s:%d/" % (HOST, port))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if p.returncode != 0:
        raise RuntimeError("wrk failed (%d): %s" % (p.returncode, (p.stderr or p.stdout)[-500:]))
    res = parse_wrk(p.stdout)
    if res["rps"] is None:
        raise RuntimeError("cannot parse wrk output:\n%s" % p.stdout[-800:])
    res["wrk_output"] = p.stdout
    # Little's law: connections with a request in flight, on average. Far
    # below `conns` means the server left some connections unanswered
    # (starved) while serving others.
    res["active_conns"] = res["rps"] * (res["avg_ms"] or 0) / 1000.0
    return res


def measure(port, conns, duration, warmup, lua, roots):
    """Warm up, then one measured wrk run; CPU ticks of each process tree in
    roots ({name: pid}) before and after."""
    if warmup > 0:
        run_wrk(port, conns, warmup, lua)
    before = {name: tree_cpu_ticks(pid) for name, pid in roots.items()}
    core_before = cpu_times(SERVER_CPU)
    t0 = time.monotonic()
    res = run_wrk(port, conns, duration, lua)
    elapsed = time.monotonic() - t0
    core_after = cpu_times(SERVER_CPU)
    after = {name: tree_cpu_ticks(pid) for name, pid in roots.items()}
    n = max(res["requests"], 1)
    res["cpu_ticks"] = {name: after[name] - before[name] for name in roots}
    res["cpu_us_per_req"] = {name: (after[name] - before[name]) / CLK_TCK * 1e6 / n for name in roots}
    res["core"] = core_usage(core_before, core_after, sum(res["cpu_ticks"].values()))
    res["elapsed_s"] = elapsed
    return res


def memory(root):
    """RSS in MiB: (workers, master). A server with one process has no
    master: that process is its worker."""
    tree = process_tree(root)
    if len(tree) <= 1:
        return sum(vm_rss_kib(p) for p in tree) / 1024.0, None
    return sum(vm_rss_kib(p) for p in tree[1:]) / 1024.0, vm_rss_kib(tree[0]) / 1024.0


# ---------------------------------------------------------------------------
# one run


def run_one(scenario_name, sc, ent, args, logdir, commands):
    server, threads, label = ent["server"], ent["threads"], ent["label"]
    app = sc["app"]
    tmpdir = tempfile.mkdtemp(prefix="rwsgi-bench-", dir="/tmp")
    procs = []
    try:
        port = free_port()
        if sc.get("front") == "nginx":
            sock = os.path.join(tmpdir, "app.sock")
            cmd = server_command(server, app, threads, uwsgi_socket=sock)
            srv = Server(label, cmd, BENCH, python_env(), logdir)
            procs.append(srv)
            location = "            include %s;\n            uwsgi_pass unix:%s;" % (UWSGI_PARAMS, sock)
            deadline = time.monotonic() + START_TIMEOUT
            while not os.path.exists(sock):
                if not srv.alive() or time.monotonic() > deadline:
                    raise RuntimeError("%s did not create %s:\n%s" % (label, sock, srv.log_tail()))
                time.sleep(0.05)
            front = start_nginx(tmpdir, port, location, logdir)
            procs.append(front)
            roots = {"server": srv.pid, "nginx": front.pid}
        else:
            cmd = server_command(server, app, threads, port=port)
            srv = Server(label, cmd, BENCH, python_env(), logdir)
            procs.append(srv)
            roots = {"server": srv.pid}
        commands.setdefault(label, " ".join(str(c) for c in cmd))
        wait_ready(procs, port, app)
        res = measure(port, sc["conns"], args.duration, args.warmup, sc.get("lua"), roots)
        for p in procs:
            if not p.alive():
                raise RuntimeError("%s died during the run:\n%s" % (p.label, p.log_tail()))
        # The server must still answer correctly after the load.
        bad = probe(port, app)
        if bad:
            raise RuntimeError("wrong answer after the run: %s" % bad)
        res["rss_mib"], res["master_rss_mib"] = memory(srv.pid)
        if sc.get("front") == "nginx":
            res["nginx_rss_mib"], _ = memory(front.pid)
        res["ok"] = True
        return res
    except Exception as exc:  # recorded, and the benchmark goes on
        return {"ok": False, "error": str(exc)[-1500:]}
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# limits


PY_LIMIT = r"""
import io, sys, time
sys.path.insert(0, %(bench)r)
import apps
app = getattr(apps, sys.argv[1])
n = int(sys.argv[2])
base = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
    "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
def start_response(status, headers, exc_info=None):
    return None
def loop(count):
    for _ in range(count):
        body = app(base.copy(), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
loop(min(n // 10, 20000))  # warm up
t0 = time.perf_counter_ns()
loop(n)
t1 = time.perf_counter_ns()
print((t1 - t0) / n / 1000.0)
"""


def python_limit(app, n):
    code = PY_LIMIT % {"bench": str(BENCH)}
    p = subprocess.run(["taskset", "-c", SERVER_CPU, str(VBIN / "python"), "-c", code, app, str(n)],
                       capture_output=True, text=True, timeout=300, env=python_env(), cwd=str(BENCH))
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-800:])
    return float(p.stdout.strip().splitlines()[-1])


def nginx_limit(args, logdir):
    tmpdir = tempfile.mkdtemp(prefix="rwsgi-bench-", dir="/tmp")
    front = None
    try:
        port = free_port()
        front = start_nginx(tmpdir, port, '            return 200 "Hello, World!";', logdir)
        wait_ready([front], port, "hello")
        res = measure(port, 16, args.duration, args.warmup, None, {"server": front.pid})
        res["rss_mib"], res["master_rss_mib"] = memory(front.pid)
        res["ok"] = True
        return res
    except Exception as exc:
        return {"ok": False, "error": str(exc)[-1500:]}
    finally:
        if front:
            front.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# installation of the peers


STATUS_FILE = VENV / "bench-install.json"


def pip(*pkgs, no_deps=False):
    cmd = [str(VBIN / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if no_deps:
        cmd.append("--no-deps")
    p = subprocess.run(cmd + list(pkgs), capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout + p.stderr


def error_gist(output):
    """The line of a failed pip build that says why: the first compiler
    error if there is one, else the first error line."""
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    picks = [l for l in lines if re.search(r"\.(c|h|cpp):\d+:\d+: (fatal )?error:", l)]
    picks += [l for l in lines if re.search(r"\berror\b", l, re.I) and "subprocess-exited-with-error" not in l
              and "note:" not in l and not l.startswith("╰")]
    if not picks:
        return lines[-1][:200] if lines else "unknown error"
    gist = re.sub(r"\s*\{aka [^}]*\}", "", picks[0])
    return gist[:240]


def requirements():
    reqs = {}
    for line in (BENCH / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs[re.split(r"[=<>! ]", line, 1)[0].lower()] = line
    return reqs


def installed_version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def importable(module):
    p = subprocess.run([str(VBIN / "python"), "-c", "import %s" % module], capture_output=True, text=True,
                       timeout=60, env=python_env())
    return p.returncode == 0, p.stderr.strip().splitlines()[-1:] if p.returncode else ""


IMPORT_NAME = {"pyuwsgi": "pyuwsgi", "meinheld": "meinheld.server", "bjoern": "bjoern", "gunicorn": "gunicorn",
               "granian": "granian", "waitress": "waitress", "flask": "flask", "matplotlib": "matplotlib"}


def ensure_installed(skip):
    """Install each pinned package that is missing, one by one; return
    {dist: status}. A peer that fails to build is recorded, not fatal."""
    status = {}
    if STATUS_FILE.exists():
        try:
            status = json.loads(STATUS_FILE.read_text())
        except ValueError:
            status = {}
    for dist, spec in requirements().items():
        version = installed_version(dist)
        wanted = spec.split("==", 1)[1] if "==" in spec else None
        if version and (wanted is None or version == wanted):
            status.setdefault(dist, {"ok": True, "note": ""})
            status[dist]["ok"] = True
            status[dist]["version"] = version
            continue
        if skip:
            status[dist] = {"ok": False, "note": "not installed (--no-install)"}
            continue
        print("==> pip install %s" % spec, flush=True)
        rc, out = pip(spec)
        note = ""
        if rc != 0 and dist == "meinheld":
            # Its greenlet<0.5 pin does not compile on 3.11; meinheld itself
            # builds and runs with a current greenlet.
            first = error_gist(out)
            rc2, out2 = pip("greenlet")
            rc, out = pip(spec, no_deps=True) if rc2 == 0 else (rc2, out2)
            note = ("installed with --no-deps next to greenlet %s: the greenlet<0.5 it pins does not build "
                    "on this Python (%s)" % (installed_version("greenlet"), first))
        if rc != 0:
            status[dist] = {"ok": False, "note": "did not build: %s" % error_gist(out)}
            print("    failed: %s" % status[dist]["note"], flush=True)
            continue
        ok, err = importable(IMPORT_NAME.get(dist, dist))
        if not ok:
            status[dist] = {"ok": False, "note": "installed but does not import: %s" % err}
            continue
        status[dist] = {"ok": True, "version": installed_version(dist), "note": note}
    try:
        STATUS_FILE.write_text(json.dumps(status, indent=1))
    except OSError:
        pass
    return status


# ---------------------------------------------------------------------------
# environment facts


def sh(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unavailable (%s)" % exc


def machine_facts():
    model = ""
    for line in sh(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    git = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg_at_start": load,
        "python": sh([str(VBIN / "python"), "-VV"]).replace("\n", " "),
        "rwsgi": "%s (git %s%s, binary built %s)" % (
            sh([str(RWSGI), "--version"]), git, ", work tree modified" if dirty else "",
            datetime.datetime.fromtimestamp(RWSGI.stat().st_mtime).isoformat(timespec="seconds")
            if RWSGI.exists() else "missing"),
        "nginx": sh([NGINX, "-v"]).replace("nginx version: ", ""),
        "wrk": sh([WRK, "-v"]).splitlines()[0].split(" [")[0] if sh([WRK, "-v"]) else "",
    }


# ---------------------------------------------------------------------------
# reporting


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    """Medians over the successful rounds of one (scenario, entry)."""
    ok = [r for r in runs if r.get("ok")]
    out = {"rounds_ok": len(ok), "rounds": len(runs), "errors": [r["error"] for r in runs if not r.get("ok")]}
    if not ok:
        return out
    out["rps"] = med([r["rps"] for r in ok])
    for k in ("p50_ms", "p99_ms", "rss_mib", "master_rss_mib", "nginx_rss_mib"):
        out[k] = med([r.get(k) for r in ok])
    out["cpu_us"] = med([r["cpu_us_per_req"].get("server") for r in ok])
    out["nginx_cpu_us"] = med([r["cpu_us_per_req"].get("nginx") for r in ok])
    out["wrk_errors"] = max(r["errors"] for r in ok)
    out["active_conns"] = med([r.get("active_conns") for r in ok])
    # A server that closes the connection after each response (wrk counts
    # those as read errors): its clients spend time reconnecting, which
    # wrk's latency leaves out, so the Little's-law check does not apply.
    out["closes"] = any(r["socket_errors"].get("read", 0) > r["requests"] / 2 for r in ok)
    return out


def error_summary(text):
    """First line of an error plus the last line of the log tail it carries."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines:
        return "unknown error"
    if len(lines) == 1:
        return lines[0][:300]
    return ("%s … %s" % (lines[0].rstrip(":"), lines[-1]))[:400]


def fmt(v, spec="%.0f", none="—"):
    return none if v is None else spec % v


def fmt_rps(v):
    return "—" if v is None else "{:,.0f}".format(v)


def ratio(v, ref):
    if v is None or not ref:
        return "—"
    return "%.2f×" % (v / ref)


def table(sc_name, sc, summary, ref_label):
    rows = []
    front = sc.get("front") == "nginx"
    head = ["server", "req/s", "p50 ms", "p99 ms", "CPU µs/req"]
    if front:
        head += ["nginx CPU µs/req"]
    head += ["RSS MiB (worker)", "master MiB", "errors", "req/s vs rwsgi", "CPU vs rwsgi"]
    rows.append("| " + " | ".join(head) + " |")
    rows.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    ref = summary.get(ref_label, {})
    order = sorted(summary.items(), key=lambda kv: -(kv[1].get("rps") or -1))
    notes = []
    for label, s in order:
        name = "**%s**" % label if label == ref_label else label
        if not s.get("rps"):
            why = s.get("skipped") or (error_summary(s["errors"][0]) if s.get("errors") else "no result")
            rows.append("| %s | %s |%s" % (name, "not run" if s.get("skipped") else "failed", " |" * (len(head) - 2)))
            notes.append("- %s: %s" % (label, why[:400]))
            continue
        cells = [name, fmt_rps(s["rps"]), fmt(s["p50_ms"], "%.2f"), fmt(s["p99_ms"], "%.2f"), fmt(s["cpu_us"], "%.1f")]
        cpu_total = s["cpu_us"]
        ref_cpu = ref.get("cpu_us")
        if front:
            cells.append(fmt(s["nginx_cpu_us"], "%.1f"))
        cells += [fmt(s["rss_mib"], "%.1f"), fmt(s["master_rss_mib"], "%.1f"),
                  str(s["wrk_errors"]) if s["wrk_errors"] else "0",
                  ratio(s["rps"], ref.get("rps")), ratio(cpu_total, ref_cpu)]
        rows.append("| " + " | ".join(cells) + " |")
        if (s.get("active_conns") is not None and s["active_conns"] < 0.5 * sc["conns"] and sc["conns"] > 1
                and not s.get("closes")):
            notes.append("- %s: only %.1f of %d connections had a request in flight on average (req/s × mean "
                         "latency): it starves some connections while serving others." % (
                             label, s["active_conns"], sc["conns"]))
        if s["rounds_ok"] < s["rounds"]:
            notes.append("- %s: %d of %d rounds failed: %s" % (label, s["rounds"] - s["rounds_ok"], s["rounds"],
                                                            error_summary(s["errors"][0])))
    return "\n".join(rows), notes


def write_markdown(path, data):
    facts, opts = data["machine"], data["options"]
    L = []
    L.append("# rwsgi and its peers, one core each")
    L.append("")
    if opts["rounds"] < 3 or opts["duration"] < 10:
        L.append("> **Smoke run (%s): %d round(s) of %d s.** These numbers only show that the harness works; "
                 "run `bash bench/run.sh` on an idle machine for the real ones." % (
                     "--quick" if opts.get("quick") else "short", opts["rounds"], opts["duration"]))
        L.append("")
    L.append("Produced by `%s` (bench/bench.py), %s; the whole run took %.0f min." % (
        data["command"], facts["date"], data["wall_s"] / 60.0))
    L.append("")
    L.append("## Machine and versions")
    L.append("")
    L.append("- CPU: %s, %s CPUs; kernel %s; load average at start %s" % (
        facts["cpu_model"], facts["cpus"], facts["kernel"], " ".join(facts["loadavg_at_start"])))
    L.append("- Python: %s" % facts["python"])
    L.append("- rwsgi: %s" % facts["rwsgi"])
    for dist in ("gunicorn", "granian", "bjoern", "pyuwsgi", "meinheld", "waitress", "flask"):
        st = data["install"].get(dist, {})
        if st.get("ok"):
            L.append("- %s %s%s" % (dist, st.get("version", "?"), (" — " + st["note"]) if st.get("note") else ""))
        else:
            L.append("- %s: **%s**" % (dist, st.get("note") or "not installed"))
    L.append("- nginx %s, %s" % (facts["nginx"], facts["wrk"]))
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(
        "Each server runs with exactly one worker process, started under `taskset -c %s` (its master and "
        "workers inherit the mask); `taskset -c %s wrk -t1 -cC -d%ds --latency` loads it from the other core. "
        "For each scenario, round after round, every server runs in turn (A B A B ...), each time freshly "
        "started, checked to answer the scenario's request correctly, warmed up for %d s, measured, checked "
        "again and stopped. The tables give the median over %d round(s) of each column. "
        "**CPU µs/req** is the utime+stime of the server's whole process tree (master, workers, and children "
        "they reaped) from /proc/PID/stat before and after the measured run, over the requests completed. "
        "**RSS** is the VmRSS of the worker process(es) after the run; the master's is shown apart "
        "(— for single-process servers). **errors** are wrk's connect errors, write errors, timeouts "
        "(> %s) and non-2xx answers, worst round. Everything serves the same apps from bench/apps.py "
        "(hello: 13 bytes with Content-Length)." % (
            SERVER_CPU, CLIENT_CPU, opts["duration"], opts["warmup"], opts["rounds"], WRK_TIMEOUT))
    cores = [r["core"] for r in data["runs"] if r.get("ok") and r.get("core")]
    if cores and statistics.median(c["other_tasks_pct"] for c in cores) > 10:
        L.insert(2, "> **The machine was busy during this run**: other tasks took a median %.0f%% of core %s "
                 "(see Method). The standings below are skewed by that; rerun on an idle machine.\n" % (
                     statistics.median(c["other_tasks_pct"] for c in cores), SERVER_CPU))
    if cores:
        def stat(key):
            vals = [c[key] for c in cores]
            return statistics.median(vals), max(vals)
        L.append("")
        L.append("How core %s spent the measured runs (median / worst run, %% of the core): the server under "
                 "test %.0f / %.0f; **other tasks %.0f / %.0f** (anything else the machine ran there); "
                 "interrupts and softirqs %.0f / %.0f (loopback networking lands partly there); steal %.0f / "
                 "%.0f; idle %.0f / %.0f. Numbers are comparable only when other tasks and steal stay near 0." % (
                     (SERVER_CPU,) + stat("measured_pct") + stat("other_tasks_pct") + stat("irq_pct")
                     + stat("steal_pct") + stat("idle_pct")))
    L.append("")
    L.append("Each peer in its fastest honest single-worker mode (exact command lines at the end):")
    L.append("")
    L.append("- rwsgi `-w 1` (threads 1 unless said otherwise); access log off by default.")
    L.append("- Gunicorn: sync worker, `-w 1` (gthread `--threads 16` for the I/O scenario); no access log by "
             "default. The sync worker closes every connection after its response: that is how it works.")
    L.append("- Granian: `--interface wsgi --workers 1 --blocking-threads 1 --runtime-threads 1 --http 1`; "
             "access log off by default.")
    L.append("- bjoern: `bjoern.run(app, host, port)` (bench/runners.py); single process, no logging.")
    L.append("- uWSGI (pyuwsgi wheel): `--master --processes 1 --http-socket` (uWSGI's own HTTP parser in "
             "the worker, no http router process), `--disable-logging`. Not `--http11-socket`: its keep-alive "
             "makes the synchronous worker serve one connection until that one closes, so with 16 "
             "connections 15 starve; `--http-socket` closes after each response, as Gunicorn's sync worker does.")
    L.append("- meinheld: `server.listen` + `server.run` (bench/runners.py), access log off, keep-alive on "
             "(its default is off).")
    L.append("- waitress: `--threads=1` (one request thread beside its I/O loop, its fastest setting for one "
             "core), `--connection-limit=1000` so that 256 clients are served (default 100).")
    L.append("")

    summ = data["summary"]
    for sc_name, sc in SCENARIOS.items():
        if sc_name not in summ:
            continue
        if sc.get("special"):
            continue
        L.append("## %s (`%s`)" % (sc["title"], sc_name))
        L.append("")
        if sc_name == "nginx_uwsgi":
            L.append("nginx (1 worker, `uwsgi_pass` to a unix socket, `include uwsgi_params`, access log off) "
                     "and the server both run on core %s; wrk on core %s talks HTTP to nginx. CPU µs/req is "
                     "the server's; nginx's own is in its column." % (SERVER_CPU, CLIENT_CPU))
            L.append("")
        if sc_name == "threads_io":
            L.append("Target: ≥ 0.9 × 16 threads × 100 req/s = %.0f req/s per worker." % sc["target_rps"])
            L.append("")
        ref_label = next((e["label"] for e in (sc["entries"] or http_entries()) if e["server"] == "rwsgi"), "rwsgi")
        if sc_name == "threads_hello":
            ref_label = "rwsgi --threads 1"
        tab, notes = table(sc_name, sc, summ[sc_name], ref_label)
        L.append(tab)
        if notes:
            L.append("")
            L.extend(notes)
        if sc_name == "threads_io":
            L.append("")
            for label, s in summ[sc_name].items():
                if s.get("rps"):
                    L.append("- %s: %s the target (%.0f req/s)" % (
                        label, "meets" if s["rps"] >= sc["target_rps"] else "**misses**", s["rps"]))
        L.append("")

    lim = summ.get("limits")
    if lim:
        L.append("## Limits")
        L.append("")
        py = lim.get("python", {})
        if py.get("hello_us") is not None:
            L.append("- **Python alone**: a loop in the bench venv's Python on core %s calling the hello app with "
                     "a fresh copy of a prebuilt environ and a no-op start_response, iterating the body: "
                     "**%.3f µs per call** (at most %s calls/s on one core, with no server at all)." % (
                         SERVER_CPU, py["hello_us"], fmt_rps(1e6 / py["hello_us"])))
        if py.get("flask_us") is not None:
            L.append("- The same loop with the Flask app: %.2f µs per call (at most %s/s)." % (
                py["flask_us"], fmt_rps(1e6 / py["flask_us"])))
        if py.get("error"):
            L.append("- Python loop failed: %s" % py["error"][:300])
        ng = lim.get("nginx", {})
        if ng.get("rps"):
            L.append("- **nginx `return 200 \"Hello, World!\"`** (1 worker on core %s, 16 keep-alive "
                     "connections): **%s req/s**, p50 %.2f ms, p99 %.2f ms, %.1f µs CPU per request "
                     "(master + worker), worker RSS %.1f MiB." % (
                         SERVER_CPU, fmt_rps(ng["rps"]), ng["p50_ms"], ng["p99_ms"], ng["cpu_us"], ng["rss_mib"]))
            ref = summ.get("hello_c16", {}).get("rwsgi", {})
            if ref.get("rps"):
                L.append("- rwsgi hello c16 reaches %.0f%% of nginx's static rps, and spends %.1f µs of CPU per "
                         "request over nginx's %.1f." % (100.0 * ref["rps"] / ng["rps"], ref["cpu_us"] - ng["cpu_us"],
                                                          ng["cpu_us"]))
        elif ng.get("errors"):
            L.append("- nginx limit failed: %s" % ng["errors"][0][:300])
        L.append("")

    L.append("## Plot")
    L.append("")
    L.append("![hello world c16: requests/s and CPU µs per request](results.png)")
    L.append("")
    L.append("## Command lines")
    L.append("")
    L.append("`PORT`, `SOCK` and the app name vary per run; `apps:` names a callable in bench/apps.py.")
    L.append("")
    for label, cmd in sorted(data["commands"].items()):
        cmd = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cmd)
        cmd = re.sub(r"--port \d+", "--port PORT", cmd)
        cmd = re.sub(r" (hello|big|echo|stream|sleep10|flask_app) 127\.0\.0\.1 \d+", r" \1 127.0.0.1 PORT", cmd)
        cmd = re.sub(r"/tmp/rwsgi-bench-[^/ ]+/app\.sock", "SOCK", cmd)
        cmd = cmd.replace(str(ROOT) + "/", "")
        L.append("- %s: `%s`" % (label, cmd))
    L.append("")
    path.write_text("\n".join(L))


def write_plot(path, data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = data["summary"].get("hello_c16", {})
    items = [(label, s) for label, s in summ.items() if s.get("rps")]
    items.sort(key=lambda kv: -kv[1]["rps"])
    ng = data["summary"].get("limits", {}).get("nginx", {})
    labels = [l for l, _ in items]
    rps = [s["rps"] for _, s in items]
    cpu = [s["cpu_us"] or 0 for _, s in items]
    colors = ["#d62728" if l == "rwsgi" else "#7f7f7f" for l in labels]
    hatches = ["" for _ in labels]
    if ng.get("rps"):
        labels.append("nginx\nreturn 200\n(limit)")
        rps.append(ng["rps"])
        cpu.append(ng["cpu_us"] or 0)
        colors.append("#c7c7c7")
        hatches.append("//")

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    quick = data["options"]["rounds"] < 3 or data["options"]["duration"] < 10
    fig.suptitle("Hello world, 16 keep-alive connections, one worker on one core (wrk on the other)%s\n%s, %s" % (
        "  —  SMOKE RUN, not final" if quick else "", data["machine"]["cpu_model"], data["machine"]["date"][:10]),
        fontsize=11)
    for ax, values, title, fmtv in (
        (axes[0], rps, "requests/s (higher is better)", lambda v: "{:,.0f}".format(v)),
        (axes[1], cpu, "server CPU µs per request (lower is better)", lambda v: "%.1f" % v),
    ):
        x = range(len(labels))
        bars = ax.bar(x, values, color=colors, edgecolor="black", linewidth=0.6)
        for b, h in zip(bars, hatches):
            b.set_hatch(h)
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, rotation=0, fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        top = max(values) if values else 1
        ax.set_ylim(0, top * 1.15)
        for b, v in zip(bars, values):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + top * 0.01, fmtv(v), ha="center",
                    va="bottom", fontsize=8)
        for tick in ax.get_xticklabels():
            if tick.get_text() == "rwsgi":
                tick.set_fontweight("bold")
                tick.set_color("#d62728")
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "{:,.0f}".format(v)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# main


def main(argv=None):
    venv_python = VBIN / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        # importlib.metadata below must see bench/.venv's packages.
        os.execv(str(venv_python), [str(venv_python), __file__] + (sys.argv[1:] if argv is None else argv))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 round, 3 s per run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--duration", type=int, default=None, help="seconds per measured run (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run (default 1)")
    ap.add_argument("--only", default="", help="comma-separated servers (default all)")
    ap.add_argument("--scenarios", default="", help="comma-separated scenarios (default all)")
    ap.add_argument("--no-install", action="store_true", help="do not pip install missing peers")
    ap.add_argument("--out", default=str(BENCH), help="directory for RESULTS.md, results.json, results.png")
    ap.add_argument("--list", action="store_true", help="list servers and scenarios")
    ap.add_argument("--baseline", default=None,
                    help="another rwsgi binary, run beside this tree's in every rwsgi entry (an A/B of a change)")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)  # the command line run.sh was given
    args = ap.parse_args(argv)

    if args.list:
        print("servers:   " + " ".join(ALL_SERVERS))
        for name, sc in SCENARIOS.items():
            print("scenario:  %-14s %s" % (name, sc["title"]))
        return 0
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (3 if args.quick else 10)
    only = [s for s in args.only.split(",") if s] or list(ALL_SERVERS)
    unknown = [s for s in only if s not in ALL_SERVERS]
    scenarios = [s for s in args.scenarios.split(",") if s] or list(SCENARIOS)
    unknown += [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        ap.error("unknown server or scenario: %s (see --list)" % ", ".join(unknown))
    if not RWSGI.exists() and "rwsgi" in only:
        ap.error("%s is missing: run `cargo build --release` (bench/run.sh does)" % RWSGI)
    for tool in (WRK, NGINX):
        if not os.access(tool, os.X_OK):
            ap.error("%s is missing (bench/run.sh installs it)" % tool)
    if (os.cpu_count() or 1) < 2:
        ap.error("needs 2 CPUs: the server on CPU %s, wrk on CPU %s" % (SERVER_CPU, CLIENT_CPU))

    global RWSGI_BASE
    if args.baseline:
        RWSGI_BASE = Path(args.baseline).resolve()
        if not os.access(RWSGI_BASE, os.X_OK):
            ap.error("--baseline %s is not an executable" % RWSGI_BASE)
        if "rwsgi" in only:
            only.append("rwsgi-base")

    started = time.monotonic()
    install = ensure_installed(args.no_install)
    available = {"rwsgi": RWSGI.exists(), "rwsgi-base": RWSGI_BASE is not None}
    for server, dist in PEER_DIST.items():
        available[server] = bool(install.get(dist, {}).get("ok"))
    flask_ok = bool(install.get("flask", {}).get("ok"))

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="rwsgi-bench-logs-", dir="/tmp"))
    data = {
        "command": (args.command or "").strip() or "python bench/bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "options": {"rounds": args.rounds, "duration": args.duration, "warmup": args.warmup, "quick": args.quick,
                    "servers": only, "scenarios": scenarios},
        "machine": machine_facts(),
        "install": install,
        "runs": [],
        "summary": {},
        "commands": {},
        "logs": str(logdir),
    }
    print("rwsgi bench: servers %s; scenarios %s; %d round(s) x %d s; logs in %s" % (
        ",".join(only), ",".join(scenarios), args.rounds, args.duration, logdir), flush=True)

    for sc_name in scenarios:
        sc = SCENARIOS[sc_name]
        if sc.get("special"):
            continue
        entries = [e for e in with_baseline(sc["entries"] or http_entries()) if e["server"] in only]
        if not entries:
            continue
        runs = {e["label"]: [] for e in entries}
        skipped = {}
        for e in entries:
            if not available.get(e["server"]):
                dist = PEER_DIST.get(e["server"], e["server"])
                skipped[e["label"]] = install.get(dist, {}).get("note") or "not installed"
            elif sc["app"] == "flask_app" and not flask_ok:
                skipped[e["label"]] = "Flask is not installed"
        print("\n== %s: %s" % (sc_name, sc["title"]), flush=True)
        for rnd in range(1, args.rounds + 1):
            for e in entries:
                if e["label"] in skipped:
                    continue
                res = run_one(sc_name, sc, e, args, logdir, data["commands"])
                res.update({"scenario": sc_name, "label": e["label"], "round": rnd})
                runs[e["label"]].append(res)
                data["runs"].append(res)
                if res.get("ok"):
                    extra = ""
                    if "nginx" in res["cpu_us_per_req"]:
                        extra = " + nginx %.1f" % res["cpu_us_per_req"]["nginx"]
                    busy = res["core"]["other_tasks_pct"]
                    print("  round %d  %-32s %10s req/s  p50 %6.2f ms  p99 %7.2f ms  CPU %6.1f%s µs/req  RSS %5.1f MiB%s%s"
                          % (rnd, e["label"], fmt_rps(res["rps"]), res["p50_ms"] or 0, res["p99_ms"] or 0,
                             res["cpu_us_per_req"]["server"], extra, res["rss_mib"],
                             "  errors %d" % res["errors"] if res["errors"] else "",
                             "  (other tasks took %.0f%% of core %s)" % (busy, SERVER_CPU) if busy > 10 else ""),
                          flush=True)
                else:
                    print("  round %d  %-32s FAILED: %s" % (rnd, e["label"], error_summary(res["error"])),
                          flush=True)
        summary = {}
        for e in entries:
            if e["label"] in skipped:
                summary[e["label"]] = {"rounds_ok": 0, "rounds": 0, "errors": [], "skipped": skipped[e["label"]]}
            else:
                summary[e["label"]] = summarize(runs[e["label"]])
        data["summary"][sc_name] = summary

    if "limits" in scenarios:
        print("\n== limits", flush=True)
        lim = {"python": {}, "nginx": {}}
        try:
            n = 200000 if args.quick else 1000000
            vals = [python_limit("hello", n) for _ in range(args.rounds)]
            lim["python"]["hello_us"] = statistics.median(vals)
            lim["python"]["hello_runs_us"] = vals
            print("  python loop, hello: %.3f µs/call" % lim["python"]["hello_us"], flush=True)
            if flask_ok:
                vals = [python_limit("flask_app", n // 10) for _ in range(args.rounds)]
                lim["python"]["flask_us"] = statistics.median(vals)
                print("  python loop, flask: %.3f µs/call" % lim["python"]["flask_us"], flush=True)
        except Exception as exc:
            lim["python"]["error"] = str(exc)
            print("  python loop FAILED: %s" % exc, flush=True)
        nruns = []
        for rnd in range(1, args.rounds + 1):
            res = nginx_limit(args, logdir)
            res.update({"scenario": "limits", "label": "nginx return 200", "round": rnd})
            nruns.append(res)
            data["runs"].append(res)
            if res.get("ok"):
                print("  round %d  nginx return 200 %10s req/s  CPU %.1f µs/req" % (
                    rnd, fmt_rps(res["rps"]), res["cpu_us_per_req"]["server"]), flush=True)
            else:
                print("  round %d  nginx return 200 FAILED: %s" % (rnd, res["error"][:200]), flush=True)
        lim["nginx"] = summarize(nruns)
        data["summary"]["limits"] = lim

    data["wall_s"] = time.monotonic() - started
    (out_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    write_markdown(out_dir / "RESULTS.md", data)
    try:
        write_plot(out_dir / "results.png", data)
    except Exception as exc:  # matplotlib missing: the tables still stand
        print("plot failed: %s" % exc, flush=True)
    print("\nWrote %s, %s, %s in %.1f min (server logs: %s)" % (
        out_dir / "RESULTS.md", out_dir / "results.json", out_dir / "results.png", data["wall_s"] / 60, logdir),
        flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

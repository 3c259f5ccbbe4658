"""Shared helpers for the integration suite: paths, ports, and running the
rwsgi binary as a real subprocess."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import rawhttp

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
APPS_DIR = HERE / "apps"
EXAMPLES_DIR = REPO_ROOT / "examples"
DJANGO_DIR = EXAMPLES_DIR / "django_project"

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Environment variables that change rwsgi's behaviour; they are removed from
# the environment a server inherits unless a test sets them on purpose.
_SERVER_ENV_VARS = ("PORT", "WEB_CONCURRENCY", "RWSGI_CMD_ARGS", "VIRTUAL_ENV", "SCRIPT_NAME", "PYTHONHOME")

BOOT_RE = re.compile(r"Booting worker with pid: (\d+)")
LOG_LINE_RE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] \[([A-Z]+)\] ")


def rwsgi_bin():
    value = os.environ.get("RWSGI_BIN")
    if value:
        return str(Path(value).resolve())
    return str(REPO_ROOT / "target" / "debug" / "rwsgi")


def runner_venv_prefix():
    """The virtualenv pytest runs in (where flask/django are installed), or None."""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return sys.prefix
    return None


def pid_alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def is_worker_process(pid):
    """Whether `pid` is one of rwsgi's workers (not its zygote or hook
    process, also children of the master), alive (not a zombie); or one
    of Gunicorn's."""
    if not pid_alive(pid):
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    # By what it is not (Gunicorn's workers count too, for the tests that
    # run both). A worker the zygote forks retitles itself first thing.
    return not cmdline.startswith(b"rwsgi: zygote") and b"--rwsgi-hook-process" not in cmdline


def worker_pids(master):
    """The master's live worker processes."""
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return sorted(p for p in map(int, out.split()) if is_worker_process(p))


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def server_env(extra=None):
    env = dict(os.environ)
    for name in _SERVER_ENV_VARS:
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll predicate() until it returns a truthy value; return it. Raises
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def http_probe(address, family=None, timeout=3.0):
    """True if a GET / on a new connection gets any HTTP response."""
    try:
        with rawhttp.Connection(address, family=family, timeout=timeout) as conn:
            conn.send(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            conn.read_head()
            return True
    except (OSError, rawhttp.ProtocolError):
        return False


def run_cli(args, env=None, cwd=None, timeout=30.0, chdir=APPS_DIR):
    """Run rwsgi to completion (for --version, --check-config, ...). Adds
    --chdir (default: the test apps dir) unless chdir is None."""
    full_args = (["--chdir", str(chdir)] if chdir is not None else []) + list(args)
    return subprocess.run(
        [rwsgi_bin()] + full_args,
        cwd=str(cwd or APPS_DIR),
        env=server_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        text=True,
        errors="replace",
    )


class Server:
    """A running rwsgi master process (started by ServerManager.start)."""

    def __init__(self, proc, args, log_dir, address, family):
        self.proc = proc
        self.args = args
        self.log_dir = log_dir
        self.address = address  # (host, port) or unix path, used by helpers
        self.family = family
        self.stdout_path = log_dir / "stdout.log"
        self.stderr_path = log_dir / "stderr.log"

    # -- addresses ------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    @property
    def host(self):
        return self.address[0]

    @property
    def port(self):
        return self.address[1]

    @property
    def base_url(self):
        host = self.host
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d" % (host, self.port)

    def url(self, path="/"):
        return self.base_url + path

    def connect(self, timeout=rawhttp.DEFAULT_TIMEOUT):
        return rawhttp.Connection(self.address, family=self.family, timeout=timeout)

    def request(self, method, target, headers=None, body=b"", version="HTTP/1.1", **kw):
        return rawhttp.request(self.address, method, target, headers, body, version, **kw)

    def get(self, target, **kw):
        return self.request("GET", target, **kw)

    # -- logs -------------------------------------------------------------
    def stderr(self):
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self):
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def wait_stderr(self, pattern, timeout=10.0):
        """Wait until the regex pattern matches the error log; return the match."""
        regex = re.compile(pattern, re.M)
        try:
            return wait_for(lambda: regex.search(self.stderr()), timeout)
        except AssertionError:
            raise AssertionError("%r did not appear in stderr within %.0fs; stderr:\n%s" % (pattern, timeout, self.stderr()))

    def count_stderr(self, pattern):
        """How many times the regex pattern matches the error log."""
        return len(re.findall(pattern, self.stderr(), re.M))

    def wait_new_stderr(self, pattern, before, timeout=10.0):
        """Wait until pattern matches more often than `before` times: a
        line logged since, even in a log shared by several tests."""
        try:
            wait_for(lambda: self.count_stderr(pattern) > before, timeout)
        except AssertionError:
            raise AssertionError("no new %r in stderr within %.0fs; stderr:\n%s" % (pattern, timeout, self.stderr()))

    def booted_pids(self):
        return [int(m) for m in BOOT_RE.findall(self.stderr())]

    def wait_booted(self, count, timeout=15.0):
        try:
            return wait_for(lambda: len(set(self.booted_pids())) >= count and self.booted_pids(), timeout)
        except AssertionError:
            raise AssertionError(
                "expected %d 'Booting worker' lines within %.0fs; stderr:\n%s" % (count, timeout, self.stderr())
            )

    # -- lifecycle ----------------------------------------------------------
    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, then SIGKILL the whole process group. Never raises."""
        return stop_process_group(self.proc, signal.SIGTERM, timeout)


def stop_process_group(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Send `sig` to a process started in a session of its own, wait up to
    `timeout`, then SIGKILL whatever is left in its process group (workers
    of a master that died are there too) and reap it. Never raises;
    returns the exit status."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode


class ClientThreads:
    """Client threads that each call `self.request()` back to back until
    the `with` block ends (subclasses define `request`)."""

    def __init__(self, clients):
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self):
        while not self.stopping.is_set():
            self.request()

    def request(self):
        raise NotImplementedError

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(15)
        # A client still running would change the counts being checked.
        stuck = [t for t in self.threads if t.is_alive()]
        if stuck and exc[0] is None:
            raise AssertionError("%d client threads still running 15 s after the stop" % len(stuck))


_AUTO = object()


class ServerManager:
    """Starts rwsgi servers and stops all of them at teardown."""

    AUTO = _AUTO

    def __init__(self, tmp_dir):
        self.tmp_dir = Path(tmp_dir)
        self.servers = []
        self._count = 0

    def start(
        self,
        args,
        *,
        bind=_AUTO,
        ready=_AUTO,
        env=None,
        cwd=None,
        chdir=_AUTO,
        wait=True,
        ready_timeout=READY_TIMEOUT,
    ):
        """Start rwsgi with args (list of str, usually ending with the APP).

        bind:  _AUTO picks a free loopback port and adds `-b 127.0.0.1:PORT`;
               None adds no -b (the test binds through args/config/env).
        ready: address to probe with GET until it answers; _AUTO means the auto
               bind address; None skips waiting. A (host, port) tuple or a
               unix socket path.
        chdir: directory given as --chdir (default: the test apps dir); None
               adds no --chdir.
        """
        self._count += 1
        log_dir = self.tmp_dir / ("server-%d" % self._count)
        log_dir.mkdir(parents=True, exist_ok=True)

        full_args = []
        address = None
        if bind is _AUTO:
            port = free_port()
            address = ("127.0.0.1", port)
            full_args += ["-b", "127.0.0.1:%d" % port]
        if chdir is _AUTO:
            chdir = APPS_DIR
        if chdir is not None:
            full_args += ["--chdir", str(chdir)]
        full_args += list(args)

        if ready is _AUTO:
            ready = address
        if address is None and ready is not None:
            address = ready
        family = rawhttp.address_family(address) if address is not None else None

        stdout = open(log_dir / "stdout.log", "wb")
        stderr = open(log_dir / "stderr.log", "wb")
        try:
            proc = subprocess.Popen(
                [rwsgi_bin()] + full_args,
                cwd=str(cwd or chdir or APPS_DIR),
                env=server_env(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stdout.close()
            stderr.close()
        server = Server(proc, full_args, log_dir, address, family)
        self.servers.append(server)

        if wait and ready is not None:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise AssertionError(
                        "rwsgi exited with code %s before serving (args %r); stderr:\n%s"
                        % (proc.returncode, full_args, server.stderr())
                    )
                if http_probe(ready, family=family):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "rwsgi did not answer on %r within %.0fs (args %r); stderr:\n%s"
                        % (ready, ready_timeout, full_args, server.stderr())
                    )
                time.sleep(0.05)
        return server

    def stop_all(self):
        for server in self.servers:
            server.stop()
        self.servers = []


def status_line_probe(address, timeout=3.0):
    """True if a GET / on a new connection gets an HTTP status line back.

    Gunicorn's readiness probe: not http_probe, which reads the whole head
    strictly. Under CPython 3.14 the head of an error response Gunicorn
    writes itself (gunicorn.util.write_error: a pre_request hook that
    raised, say) ends with a bare LF instead of CRLF: 3.14's
    textwrap.dedent empties every whitespace-only line, and the blank line
    of Gunicorn's template is a lone "\\r"."""
    try:
        with socket.create_connection(address, timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            with s.makefile("rb") as f:
                return f.readline(256).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextlib.contextmanager
def gunicorn(args, log_path, env=None, cwd=APPS_DIR):
    """Gunicorn (a test dependency) with `args` (ending with the app) on a
    free loopback port, --chdir to the test apps, for tests where rwsgi
    and Gunicorn must behave the same; yields its address."""
    port = free_port()
    exe = Path(sys.prefix) / "bin" / "gunicorn"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(exe), "-b", "127.0.0.1:%d" % port, "--chdir", str(APPS_DIR)] + list(args),
            cwd=str(cwd), env=server_env(env), stdout=log, stderr=log, start_new_session=True,
        )
        try:
            wait_for(lambda: proc.poll() is not None or status_line_probe(("127.0.0.1", port)), 20,
                     message="gunicorn to answer")
            assert proc.poll() is None, "gunicorn exited:\n" + Path(log_path).read_text(errors="replace")
            yield ("127.0.0.1", port)
        finally:
            stop_process_group(proc)


def refused_config(tmp_path, text, name="conf.py"):
    """Start rwsgi with a config file holding `text`: it must refuse it at
    start (exit 1); the path and what it printed on stderr."""
    conf = tmp_path / name
    conf.write_text(text)
    result = run_cli(["-c", str(conf), "testapp:app"], timeout=30)
    assert result.returncode == 1, (result.returncode, result.stderr)
    return conf, result.stderr


def read_until_close(sock, max_seconds=30.0):
    """Everything a connected socket receives until the peer closes (a
    reset ends it too). Each read waits at most the socket's timeout; a
    peer still sending after max_seconds fails the test."""
    data = b""
    deadline = time.monotonic() + max_seconds
    while True:
        if time.monotonic() > deadline:
            raise AssertionError("still receiving after %.0f s: %r" % (max_seconds, data[:200]))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def exchange(address, raw, timeout=10.0, piece=None):
    """Send raw bytes on a new connection to (host, port), or to a unix
    socket path, and return everything the server sends until it closes.
    With `piece`, the bytes go out that many at a time (TCP_NODELAY)."""
    family = socket.AF_UNIX if isinstance(address, str) else rawhttp.address_family(address)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        if piece is None:
            s.sendall(raw)
        else:
            if family != socket.AF_UNIX:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(raw), piece):
                s.sendall(raw[i:i + piece])
        return read_until_close(s)


def get_close(address, path=b"/hello", timeout=10.0):
    """GET path with Connection: close; the raw response bytes."""
    return exchange(address, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout)

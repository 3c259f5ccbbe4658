"""HUP reload: a new generation of workers boots beside the old one, and
the old one is stopped only once the new one serves; nothing is lost."""

import os
import signal
import socket
import time

from support import ClientThreads, exchange, wait_for

APP = '''import os
VERSION = {version!r}

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION + b" " + str(os.getpid()).encode()]
'''


# The line that ends the broken app's logged exception, once per failed
# load. Not "Traceback (most recent call last)": what comes before it depends
# on the CPython version. Under 3.11 the log shows importlib's frames under
# that header; under 3.13 and 3.14 importlib's frames are dropped, which
# leaves a SyntaxError raised while compiling the module with no frame at
# all, and Python prints no header.
BROKEN_LINE = r"^SyntaxError: invalid syntax$"


def write_app(directory, version, broken=False):
    text = APP.format(version=version)
    if broken:
        text += "\ndef broken(:\n"
    (directory / "reload_app.py").write_text(text)


def fetch(srv):
    """One GET on a new connection; returns the body or raises."""
    data = exchange((srv.host, srv.port), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise AssertionError("bad response: %r" % data[:200])
    return body


class Load(ClientThreads):
    """Requests sent back to back from two threads until stopped."""

    def __init__(self, srv, threads=2):
        super().__init__(threads)
        self.srv = srv
        self.sent = 0
        self.failed = []
        self.bodies = set()

    def request(self):
        try:
            body = fetch(self.srv)
            with self.lock:
                self.sent += 1
                self.bodies.add(body.split(b" ")[0])
        except Exception as e:  # noqa: BLE001 - every failure counts
            with self.lock:
                self.sent += 1
                self.failed.append(repr(e))


def test_three_reloads_under_load_lose_nothing(servers, tmp_path):
    write_app(tmp_path, b"v0")
    srv = servers.start(["-w", "2", "reload_app:app"], chdir=str(tmp_path))
    first = srv.wait_booted(2)
    with Load(srv) as load:
        for version in (b"v1", b"v2", b"v3"):
            time.sleep(0.5)
            write_app(tmp_path, version)
            os.kill(srv.pid, signal.SIGHUP)
            wait_for(lambda: fetch(srv).startswith(version), 20, message="%s served" % version.decode())
        time.sleep(0.5)
    print("HUP under load: %d requests sent, %d failed" % (load.sent, len(load.failed)))
    assert load.failed == [], load.failed[:5]
    assert load.sent > 100
    assert {b"v0", b"v3"} <= load.bodies
    assert not set(first) & set(srv.booted_pids()[2:])
    wait_for(lambda: not any(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split(")")[1].split()[0] != "Z" for p in first), 15, message="first workers gone")
    assert srv.stderr().count("Reload: 2 new workers booted") == 3


def test_reload_with_broken_code_keeps_old_workers(servers, tmp_path):
    write_app(tmp_path, b"good")
    srv = servers.start(["-w", "2", "reload_app:app"], chdir=str(tmp_path))
    old = srv.wait_booted(2)
    # Both workers must have imported the good code before it breaks (a
    # generation that never booted and cannot load stops the master).
    for _ in range(5):
        assert fetch(srv).startswith(b"good")
    time.sleep(1)
    write_app(tmp_path, b"bad", broken=True)
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: "Reload failed" in srv.stderr(), 20, message="the failed reload to be logged")
    time.sleep(1)
    assert srv.alive(), srv.stderr()
    for _ in range(10):
        assert fetch(srv).startswith(b"good")
    assert srv.count_stderr(BROKEN_LINE) == 1, srv.stderr()
    assert all(os.path.exists("/proc/%d" % p) for p in old)
    # A later good reload still works.
    write_app(tmp_path, b"fixed")
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: fetch(srv).startswith(b"fixed"), 20, message="the fixed code served")


def test_usr2_binary_upgrade_under_load(servers, tmp_path):
    """USR2 starts a new master on the same sockets (no bind gap); TERM to
    the old one leaves the new one serving and owning the pidfile."""
    write_app(tmp_path, b"v1")
    pidfile = tmp_path / "rwsgi.pid"
    sock = "/tmp/rwsgi-usr2-%d.sock" % os.getpid()
    srv = servers.start(["-w", "2", "-p", str(pidfile), "-b", "unix:" + sock, "reload_app:app"], chdir=str(tmp_path))
    srv.wait_booted(2)
    old_master = srv.pid
    with Load(srv) as load:
        time.sleep(0.5)
        write_app(tmp_path, b"v2")
        os.kill(old_master, signal.SIGUSR2)
        time.sleep(0.2)
        os.kill(old_master, signal.SIGUSR2)  # a second USR2 starts no third master
        upgraded = tmp_path / "rwsgi.pid.2"
        wait_for(lambda: upgraded.exists() and upgraded.read_text().strip(), 20, message="the new master's pidfile")
        new_master = int(upgraded.read_text())
        assert new_master != old_master
        wait_for(lambda: any(fetch(srv).startswith(b"v2") for _ in range(10)), 20, message="the new master serving")
        os.kill(old_master, signal.SIGTERM)
        assert srv.wait(20) == 0
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_master), 20,
                 message="the new master to take over the pidfile")
        time.sleep(0.5)
    try:
        print("USR2 under load: %d requests sent, %d failed" % (load.sent, len(load.failed)))
        assert load.failed == [], load.failed[:5]
        assert fetch(srv).startswith(b"v2")
        assert "a new master is already running" in srv.stderr()
        # The old master left the unix socket file to the new one.
        with socket.socket(socket.AF_UNIX) as u:
            u.settimeout(5)
            u.connect(sock)
            u.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert u.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: not os.path.exists("/proc/%d" % new_master) or
             open("/proc/%d/stat" % new_master).read().rsplit(")", 1)[1].split()[0] == "Z", 20,
             message="the new master to stop")


def test_reload_applies_changed_binds(servers, tmp_path):
    from support import free_port

    write_app(tmp_path, b"v1")
    old_port, new_port = free_port(), free_port()
    config = tmp_path / "rwsgi.toml"
    config.write_text('bind = ["127.0.0.1:%d"]\nworkers = 1\n' % old_port)
    srv = servers.start(["-c", str(config), "reload_app:app"], chdir=str(tmp_path), bind=None,
                        ready=("127.0.0.1", old_port))
    srv.wait_booted(1)
    config.write_text('bind = ["127.0.0.1:%d"]\nworkers = 2\n' % new_port)
    os.kill(srv.pid, signal.SIGHUP)

    def served_on(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def refused(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_for(lambda: served_on(new_port), 20, message="the new bind to serve")
    # Closed for real: no process (not even a new worker) keeps it listening.
    wait_for(lambda: refused(old_port), 20, message="the old bind to refuse connections")
    wait_for(lambda: len(srv.booted_pids()) >= 3, 10, message="two new workers (workers = 2)")


def test_replacement_that_cannot_load_does_not_stop_a_running_service(servers, tmp_path):
    """Code on disk breaks while the service runs; recycled workers cannot
    load it. The master keeps going (pacing the retries) and recovers when
    the code is fixed."""
    write_app(tmp_path, b"ok")
    # No readiness probe: it would count toward --max-requests.
    srv = servers.start(["-w", "1", "--max-requests", "2", "reload_app:app"], chdir=str(tmp_path), ready=None)
    srv.wait_booted(1)
    wait_for(lambda: _fetch_ok(srv, b"ok"), 10, message="the first worker to serve")
    write_app(tmp_path, b"bad", broken=True)
    try:
        fetch(srv)  # the second request: the worker recycles after it
    except Exception:
        pass
    wait_for(lambda: "workers serve on" in srv.stderr(), 15, message="the failed replacement to be logged")
    time.sleep(1)
    assert srv.alive(), srv.stderr()[-3000:]
    write_app(tmp_path, b"fixed")
    wait_for(lambda: _fetch_ok(srv, b"fixed"), 30, message="a worker with the fixed code")


def _fetch_ok(srv, prefix):
    try:
        return fetch(srv).startswith(prefix)
    except Exception:
        return False


def test_usr2_rollback_keeps_the_unix_socket(servers, tmp_path):
    """USR2, then TERM the new master (a rollback): the old master serves
    on, its unix socket file included."""
    write_app(tmp_path, b"old")
    sock = "/tmp/rwsgi-rollback-%d.sock" % os.getpid()
    srv = servers.start(["-w", "1", "-b", "unix:" + sock, "reload_app:app"], chdir=str(tmp_path))
    srv.wait_booted(1)
    os.kill(srv.pid, signal.SIGUSR2)
    wait_for(lambda: "New master started (pid: " in srv.stderr(), 15, message="the new master")
    new_master = int(srv.stderr().split("New master started (pid: ")[1].split(")")[0])
    # The new master logs to the same stderr: its worker's boot shows there.
    wait_for(lambda: len(srv.booted_pids()) >= 2, 15, message="the new master's worker")
    os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: "this one serves on" in srv.stderr(), 15, message="the old master to see the new one go")
    with socket.socket(socket.AF_UNIX) as u:
        u.settimeout(5)
        u.connect(sock)
        u.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert u.recv(100).startswith(b"HTTP/1.1 200")

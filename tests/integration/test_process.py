"""Process model and deployment options: binds (unix, IPv6, several),
workers from RWSGI_CMD_ARGS and config files, signals, worker replacement,
import failures, -e, --pythonpath, --virtualenv / VIRTUAL_ENV, logs."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import rawhttp
from support import exchange, free_port, get_close, http_probe, ipv6_loopback_available, pid_alive, run_cli, wait_for, worker_pids


def getenv(srv, key):
    resp = srv.get("/getenv?key=" + key)
    assert resp.status == 200, resp
    return json.loads(resp.body)["value"]


def assert_stays(predicate, seconds=1.0, message="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(0.05)


# -- binds ---------------------------------------------------------------------


@pytest.fixture
def short_tmp():
    # AF_UNIX paths are limited to ~107 bytes: keep them short, under /tmp.
    path = tempfile.mkdtemp(prefix="rwsgi-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unix_socket(servers, short_tmp):
    sock_path = os.path.join(short_tmp, "rwsgi.sock")
    srv = servers.start(["-b", "unix:" + sock_path, "testapp:app"], bind=None, ready=sock_path)
    resp = rawhttp.request(sock_path, "GET", "/hello")
    assert resp.status == 200
    assert resp.body == b"Hello, world!\n"
    with rawhttp.Connection(sock_path) as conn:
        for i in range(3):
            assert conn.request("GET", "/path/%d" % i).body == b"/path/%d?" % i
    srv.wait_stderr(r"Listening at: unix:" + re.escape(sock_path))


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) on this host")
def test_ipv6_bind(servers):
    port = free_port("::1")
    srv = servers.start(["-b", "[::1]:%d" % port, "testapp:app"], bind=None, ready=("::1", port))
    resp = srv.get("/environ")
    assert resp.status == 200
    env = json.loads(resp.body)
    assert env["REMOTE_ADDR"]["value"] == "::1"
    assert env["SERVER_PORT"]["value"] == str(port)


def test_two_binds(servers, short_tmp):
    port1, port2 = free_port(), free_port()
    sock_path = os.path.join(short_tmp, "second.sock")
    srv = servers.start(
        ["-b", "127.0.0.1:%d" % port1, "-b", "127.0.0.1:%d" % port2, "-b", "unix:" + sock_path, "testapp:app"],
        bind=None,
        ready=("127.0.0.1", port1),
    )
    wait_for(lambda: http_probe(("127.0.0.1", port2)), 10, message="second bind answering")
    for address in (("127.0.0.1", port1), ("127.0.0.1", port2), sock_path):
        resp = rawhttp.request(address, "GET", "/hello")
        assert resp.status == 200 and resp.body == b"Hello, world!\n", address
    listening = "\n".join(l for l in srv.stderr().splitlines() if "Listening at:" in l)
    for expected in ("http://127.0.0.1:%d" % port1, "http://127.0.0.1:%d" % port2, "unix:" + sock_path):
        assert expected in listening, listening


# -- workers and configuration sources -------------------------------------------------


def test_workers_from_rwsgi_cmd_args(servers):
    srv = servers.start(["testapp:app"], env={"RWSGI_CMD_ARGS": "-w 2"})
    srv.wait_booted(2)
    assert_stays(lambda: len(srv.booted_pids()) == 2, 1.0, "exactly 2 workers")


def test_config_file_sets_bind_workers_and_env(servers, tmp_path):
    port = free_port()
    cfg = tmp_path / "rwsgi.toml"
    cfg.write_text(
        'bind = ["127.0.0.1:%d"]\nworkers = 2\nwsgi_app = "testapp:app"\nraw_env = ["FROM_CONFIG=yes"]\n' % port
    )
    srv = servers.start(["-c", str(cfg)], bind=None, ready=("127.0.0.1", port))
    srv.wait_booted(2)
    assert_stays(lambda: len(srv.booted_pids()) == 2, 0.5, "exactly 2 workers")
    assert getenv(srv, "FROM_CONFIG") == "yes"


def test_command_line_overrides_config_file(servers, tmp_path):
    config_port, cli_port = free_port(), free_port()
    cfg = tmp_path / "rwsgi.toml"
    cfg.write_text('bind = ["127.0.0.1:%d"]\nworkers = 3\nwsgi_app = "testapp:app"\n' % config_port)
    srv = servers.start(
        ["-c", str(cfg), "-b", "127.0.0.1:%d" % cli_port, "-w", "1"], bind=None, ready=("127.0.0.1", cli_port)
    )
    srv.wait_booted(1)
    assert_stays(lambda: len(srv.booted_pids()) == 1, 1.0, "exactly 1 worker")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", config_port), timeout=2).close()


def test_factory_with_literal_arguments(servers):
    srv = servers.start(["testapp:make_app('hello-arg', 2, key=1, flag=True)"])
    resp = srv.get("/anything")
    assert resp.status == 200
    assert json.loads(resp.body) == {"args": ["hello-arg", 2], "kwargs": {"key": 1, "flag": True}}


def test_env_option(servers):
    srv = servers.start(["-e", "RWSGI_TEST_A=hello world", "-e", "RWSGI_TEST_B=x=y", "testapp:app"])
    assert getenv(srv, "RWSGI_TEST_A") == "hello world"
    assert getenv(srv, "RWSGI_TEST_B") == "x=y"


def test_keep_alive_timeout_closes_idle_connections(servers):
    srv = servers.start(["--keep-alive", "1", "testapp:app"])
    with srv.connect() as conn:
        assert conn.request("GET", "/hello").status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=8), "idle keep-alive connection was not closed"
        assert time.monotonic() - started >= 0.5, "closed right away instead of keeping alive"


# -- signals, worker lifecycle, failures ----------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_signal_exits_cleanly(servers, sig):
    srv = servers.start(["-w", "2", "testapp:app"])
    workers = srv.wait_booted(2)
    srv.signal(sig)
    try:
        code = srv.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail("master did not exit within 15s of %s; stderr:\n%s" % (sig.name, srv.stderr()))
    assert code == 0, srv.stderr()
    wait_for(lambda: not any(pid_alive(p) for p in workers), 10, message="workers to exit")


def test_killed_worker_is_replaced(servers):
    srv = servers.start(["-w", "2", "testapp:app"])
    original = srv.wait_booted(2)
    victim = original[0]
    os.kill(victim, signal.SIGKILL)

    def replacement():
        new = [p for p in srv.booted_pids() if p not in original]
        return new

    try:
        new = wait_for(replacement, 15)
    except AssertionError:
        raise AssertionError("no replacement worker booted; stderr:\n%s" % srv.stderr())
    assert victim not in new
    assert srv.alive()
    wait_for(lambda: not pid_alive(victim), 10, message="killed worker reaped")
    for _ in range(4):
        assert srv.get("/hello").status == 200


def live_workers(srv):
    """Pids of the master's workers that are alive."""
    return worker_pids(srv.pid)


def test_workers_ignore_the_masters_control_signals(servers):
    """`pkill -HUP rwsgi` reaches the workers too: they must ignore HUP,
    TTIN, TTOU, USR2 and WINCH (the master's signals) and keep serving."""
    srv = servers.start(["-w", "2", "testapp:app"])
    workers = srv.wait_booted(2)
    for pid in workers:
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGWINCH):
            os.kill(pid, sig)
    assert_stays(lambda: srv.alive() and all(pid_alive(p) for p in workers), 1.0, "workers survive")
    assert srv.get("/hello").status == 200


def test_ttin_and_ttou_change_the_worker_count(servers):
    srv = servers.start(["-w", "2", "testapp:app"])
    original = srv.wait_booted(2)
    srv.signal(signal.SIGTTIN)
    wait_for(lambda: len(live_workers(srv)) == 3, 15, message="a third worker after TTIN")
    # One at a time: the kernel merges a signal sent while one is pending.
    srv.signal(signal.SIGTTOU)
    wait_for(lambda: len(live_workers(srv)) == 2, 15, message="two workers after TTOU")
    srv.signal(signal.SIGTTOU)
    wait_for(lambda: len(live_workers(srv)) == 1, 15, message="one worker after a second TTOU")
    # TTOU stops the oldest workers first.
    assert not any(p in live_workers(srv) for p in original)
    srv.signal(signal.SIGTTOU)
    assert_stays(lambda: len(live_workers(srv)) == 1, 1.0, "never fewer than one worker")
    assert srv.get("/hello").status == 200


def test_usr1_reopens_log_files(servers, tmp_path):
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    srv = servers.start(["--error-logfile", str(error_log), "--access-logfile", str(access_log), "testapp:app"])
    assert srv.get("/hello").status == 200
    wait_for(lambda: access_log.exists() and access_log.read_text(), 5, message="first access line")
    # What logrotate does: move the files away, then send USR1.
    error_log.rename(tmp_path / "error.log.1")
    access_log.rename(tmp_path / "access.log.1")
    srv.signal(signal.SIGUSR1)
    wait_for(lambda: error_log.exists(), 5, message="error log reopened by the master")

    def access_reopened():
        srv.get("/hello")
        return access_log.exists() and "/hello" in access_log.read_text()

    wait_for(access_reopened, 10, message="access log reopened by the worker")


def test_import_failure_stops_master_and_logs_once(servers):
    srv = servers.start(["-w", "4", "broken_app:app"], wait=False)
    try:
        code = srv.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("master kept running with an unimportable app; stderr:\n%s" % srv.stderr()[-5000:])
    log = srv.stderr()
    assert code != 0, log
    assert log.count("Traceback (most recent call last)") == 1, log
    # The exception line closing the traceback, also exactly once.
    exception_lines = [l for l in log.splitlines() if l.strip() == "RuntimeError: broken_app import failure marker"]
    assert len(exception_lines) == 1, log


def test_missing_module_stops_master(servers):
    srv = servers.start(["-w", "2", "no_such_module_for_rwsgi:app"], wait=False)
    try:
        code = srv.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("master kept running with a missing module; stderr:\n%s" % srv.stderr()[-5000:])
    assert code != 0
    assert "no_such_module_for_rwsgi" in srv.stderr()


# -- import paths: --pythonpath, --virtualenv, VIRTUAL_ENV ------------------------------


def write_app_module(directory, module, text):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / (module + ".py")).write_text(
        "from %s_helper import MESSAGE\n\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [MESSAGE]\n" % module
    )
    (directory / (module + "_helper.py")).write_text("MESSAGE = %r\n" % text)


def test_pythonpath(servers, tmp_path):
    dir1, dir2 = tmp_path / "extra1", tmp_path / "extra2"
    write_app_module(dir1, "pythonpath_app", b"from pythonpath")
    # Move the helper into the second directory: both entries are needed.
    dir2.mkdir()
    (dir1 / "pythonpath_app_helper.py").rename(dir2 / "pythonpath_app_helper.py")

    result = run_cli(["--check-config", "pythonpath_app:app"])
    assert result.returncode != 0, "pythonpath_app must not be importable without --pythonpath"

    srv = servers.start(["--pythonpath", "%s,%s" % (dir1, dir2), "pythonpath_app:app"])
    resp = srv.get("/")
    assert resp.status == 200 and resp.body == b"from pythonpath"


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory):
    """A fresh virtualenv whose site-packages holds a module found nowhere else."""
    venv = tmp_path_factory.mktemp("othervenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = venv / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    assert site.is_dir(), site
    write_app_module(site, "venv_only_app", b"from the other venv")
    return venv


def test_app_only_in_venv_needs_venv(other_venv):
    result = run_cli(["--check-config", "venv_only_app:app"])
    assert result.returncode != 0, "venv_only_app must not be importable without a virtualenv setting"


def test_virtualenv_option(servers, other_venv):
    srv = servers.start(["--virtualenv", str(other_venv), "venv_only_app:app"])
    resp = srv.get("/")
    assert resp.status == 200 and resp.body == b"from the other venv"


def test_virtual_env_variable(servers, other_venv):
    srv = servers.start(["venv_only_app:app"], env={"VIRTUAL_ENV": str(other_venv)})
    resp = srv.get("/")
    assert resp.status == 200 and resp.body == b"from the other venv"


# -- logs --------------------------------------------------------------------------------


DEFAULT_ACCESS_RE = (
    r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
    r'"GET /hello\?x=1 HTTP/1\.1" 200 14 "http://referrer\.test/page" "rwsgi-test-agent/1\.0"$'
)


def test_access_log_default_format(servers, tmp_path):
    log_path = tmp_path / "access.log"
    srv = servers.start(["--access-logfile", str(log_path), "testapp:app"])
    resp = srv.get(
        "/hello?x=1", headers=[("User-Agent", "rwsgi-test-agent/1.0"), ("Referer", "http://referrer.test/page")]
    )
    assert resp.status == 200

    def our_lines():
        if not log_path.exists():
            return []
        return [l for l in log_path.read_text().splitlines() if "rwsgi-test-agent" in l]

    lines = wait_for(our_lines, 10, message="access log line")
    assert len(lines) == 1, lines
    assert re.match(DEFAULT_ACCESS_RE, lines[0]), lines[0]


# Apache's combined format: each quoted field holds no unescaped quote.
QUOTED = r'"((?:[^"\\]|\\.)*)"'
COMBINED_RE = r'^(\S+) - (\S+) \[[^\]]+\] %s (\d{3}) (\S+) %s %s$' % (QUOTED, QUOTED, QUOTED)


def test_access_log_cannot_be_forged_and_keeps_every_byte(servers, tmp_path):
    """Quotes, backslashes, control and non-ASCII bytes from the client
    are escaped (Apache's way: \\" \\\\ \\t \\xhh) in every atom, so a
    client cannot add fields or lines, and the raw bytes can be recovered."""
    log_path = tmp_path / "access.log"
    fmt = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" "%({x-note}i)s" "%(m)s %(U)s %(q)s"'
    srv = servers.start(["--access-logfile", str(log_path), "--access-logformat", fmt, "testapp:app"])
    head = (
        b'GET /hello?q="x\\y" HTTP/1.1\r\nHost: t\r\n'
        b'User-Agent: a" "fake-agent\r\n'
        b"Referer: caf\xe9\\\tx\r\n"
        b"Authorization: Basic eCJ5XDpwYXNz\r\n"  # user x"y\
        b"X-Note: \xff end\r\n"
        b"Connection: close\r\n\r\n"
    )
    reply = exchange((srv.host, srv.port), head)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    def our_lines():
        return log_path.exists() and [l for l in log_path.read_text().splitlines() if "fake-agent" in l]

    lines = wait_for(our_lines, 10, message="an access log line")
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.isascii(), line
    combined = re.match(COMBINED_RE + "", line.rsplit(' "', 2)[0])
    assert combined, line
    assert combined.group(2) == 'x\\"y\\\\', line
    assert combined.group(3) == 'GET /hello?q=\\"x\\\\y\\" HTTP/1.1', line
    assert combined.group(6) == "caf\\xe9\\\\\\tx", line
    assert combined.group(7) == 'a\\" \\"fake-agent', line
    assert line.endswith(' "\\xff end" "GET /hello q=\\"x\\\\y\\""'), line


def test_access_log_custom_format_to_stdout(servers):
    srv = servers.start(["--access-logfile", "-", "--access-logformat", "%(m)s %(U)s %(s)s", "testapp:app"])
    assert srv.get("/hello?x=1").status == 200
    assert srv.get("/status/404").status == 404
    def our_lines():
        lines = [l for l in srv.stdout().splitlines() if "/hello" in l or "/status" in l]
        return lines if len(lines) >= 2 else None

    lines = wait_for(our_lines, 10, message="two access log lines on stdout")
    assert lines == ["GET /hello 200", "GET /status/404 404"], lines


def test_no_access_log_by_default(servers):
    srv = servers.start(["testapp:app"])
    assert srv.get("/hello").status == 200
    time.sleep(0.3)
    assert "GET /hello" not in srv.stdout()
    assert "GET /hello" not in srv.stderr()


def test_error_logfile(servers, tmp_path):
    log_path = tmp_path / "error.log"
    srv = servers.start(["--error-logfile", str(log_path), "testapp:app"])
    assert srv.get("/hello").status == 200
    text = wait_for(lambda: log_path.exists() and "Booting worker" in log_path.read_text() and log_path.read_text(), 10)
    assert "Listening at: http://127.0.0.1:%d" % srv.port in text


def test_serving_worker_exiting_with_status_4_is_replaced(servers):
    """Only a worker that never finished booting counts as a failed app
    load; a serving one exiting with the same status is replaced."""
    srv = servers.start(["-w", "2", "edge_app:app"])
    original = srv.wait_booted(2)
    try:
        srv.get("/exit4")
    except Exception:
        pass  # the worker died mid-request
    wait_for(lambda: len(srv.booted_pids()) >= 3, 15, message="a replacement worker")
    assert srv.alive(), srv.stderr()
    assert "App failed to load" not in srv.stderr()
    assert len([p for p in live_workers(srv) if p not in original]) >= 1


def test_workers_stop_when_the_master_is_killed(servers):
    srv = servers.start(["-w", "2", "testapp:app"])
    workers = srv.wait_booted(2)
    srv.signal(signal.SIGKILL)
    srv.wait(10)
    wait_for(lambda: not any(pid_alive(p) for p in workers), 15, message="orphaned workers to exit")


def test_max_requests_recycles_workers_without_failed_requests(servers):
    srv = servers.start(["-w", "2", "--max-requests", "50", "--max-requests-jitter", "5", "testapp:app"])
    original = srv.wait_booted(2)
    failures = 0
    for _ in range(300):
        try:
            resp = srv.get("/pid")
            failures += resp.status != 200
        except OSError:
            failures += 1
    assert failures == 0, srv.stderr()[-3000:]
    # 300 requests over 2 workers restarting every 50..55: several rounds.
    assert len(srv.booted_pids()) >= 6, srv.stderr()[-3000:]
    assert all(p not in live_workers(srv) for p in original)
    assert "Autorestarting worker after current request" in srv.stderr()


def test_a_worker_on_its_last_request_is_replaced_while_it_runs(servers):
    """--max-requests 1: the worker's first request is its last, and from
    its start the worker counts as stopping, so the master boots its
    replacement at once. A request sent meanwhile is answered by the new
    worker before the last one (an 8 s sleep, well over a worker's boot)
    ends."""
    srv = servers.start(["-w", "1", "--max-requests", "1", "threads_app:app"], ready=None)
    (old,) = srv.wait_booted(1)
    order, last = [], {}

    def last_request():
        last["resp"] = srv.get("/sleep?ms=8000&name=last", timeout=30)
        order.append("last")

    t = threading.Thread(target=last_request, daemon=True)
    t.start()
    try:
        booted = srv.wait_booted(2)
        new = next(p for p in booted if p != old)
        resp = srv.get("/hello", timeout=10)
        order.append("meanwhile")
        assert resp.status == 200 and int(resp.header("X-Pid")) == new, resp
    finally:
        t.join(40)
    assert not t.is_alive(), "the last request never finished"
    assert last["resp"].status == 200 and int(last["resp"].header("X-Pid")) == old, last
    assert order == ["meanwhile", "last"], order


def test_crash_loop_backs_off(servers):
    """Workers that crash on import are respawned with a growing delay:
    the master neither spins nor gives up."""
    srv = servers.start(["-w", "1", "crash_app:app"], ready=None)
    time.sleep(4)
    boots = len(srv.booted_pids())
    assert srv.alive(), srv.stderr()
    # 100 + 200 + 400 + 800 + 1600 ms of delays fit in 4 s: about 6 boots,
    # where an unchecked loop would boot dozens.
    assert 2 <= boots <= 8, srv.stderr()[-3000:]
    assert "the next one starts in" in srv.stderr()


def test_pidfile_written_refused_and_removed(servers, tmp_path):
    pidfile = tmp_path / "rwsgi.pid"
    srv = servers.start(["-p", str(pidfile), "testapp:app"])
    assert pidfile.read_text().strip() == str(srv.pid)
    second = run_cli(["-p", str(pidfile), "-b", "127.0.0.1:%d" % free_port(), "testapp:app"], timeout=15)
    assert second.returncode != 0
    assert "which is running" in second.stderr
    assert pidfile.read_text().strip() == str(srv.pid)
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert not pidfile.exists()


def test_process_names(servers):
    srv = servers.start(["-w", "1", "testapp:app"])
    (worker,) = srv.wait_booted(1)
    wait_for(lambda: open("/proc/%d/comm" % worker).read().strip() == "rwsgi: worker", 5, message="worker name")
    assert open("/proc/%d/comm" % srv.pid).read().strip() == "rwsgi: master"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_run_as_user_and_group(servers):
    import pwd, grp
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    srv = servers.start(["-u", "nobody", "-g", group, "edge_app:app"])
    ids = json.loads(srv.get("/ids").body)
    assert (ids["uid"], ids["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    # The master keeps its privileges.
    assert os.stat("/proc/%d" % srv.pid).st_uid == 0


def test_umask_applies_to_unix_socket_files(servers, short_tmp):
    path = os.path.join(short_tmp, "m.sock")
    servers.start(["-m", "0o077", "-b", "unix:" + path, "testapp:app"], bind=None, ready=path)
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_max_worker_memory_recycles_a_leaking_worker(servers):
    srv = servers.start(["-w", "1", "--max-worker-memory", "100", "edge_app:app"])
    (first,) = srv.wait_booted(1)
    for _ in range(12):
        assert srv.get("/leak").status == 200
    # 12 x 16 MiB would be ~200 MiB: the worker restarted on the way.
    wait_for(lambda: len(srv.booted_pids()) >= 2, 10, message="a replacement worker")
    assert "over --max-worker-memory 100 MiB" in srv.stderr()
    wait_for(lambda: not pid_alive(first), 10, message="the leaking worker to exit")


def test_process_titles_show_role_and_name(servers):
    srv = servers.start(["-w", "1", "-n", "shop", "testapp:app"])
    (worker,) = srv.wait_booted(1)

    def cmdline(pid):
        return open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0]

    wait_for(lambda: cmdline(worker) == b"rwsgi: worker [shop]", 5, message="the worker's title")
    assert cmdline(srv.pid) == b"rwsgi: master [shop]"


def test_term_lets_a_slow_request_finish(servers):
    srv = servers.start(["-w", "1", "edge_app:app"])
    srv.wait_booted(1)
    result = {}

    def slow():
        result["data"] = get_close((srv.host, srv.port), b"/sleep?2", timeout=15)

    import threading
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    t.join(15)
    assert result.get("data", b"").startswith(b"HTTP/1.1 200") and result["data"].endswith(b"slept"), result
    assert srv.wait(15) == 0


def test_files_keep_the_umask_rwsgi_started_with(servers, tmp_path):
    pidfile = tmp_path / "rwsgi.pid"
    old = os.umask(0o022)
    try:
        servers.start(["-p", str(pidfile), "testapp:app"])
    finally:
        os.umask(old)
    assert pidfile.stat().st_mode & 0o777 == 0o644


def test_memory_recycle_does_not_wait_for_idle_keep_alive_clients(servers):
    srv = servers.start(["-w", "1", "--max-worker-memory", "1", "--keep-alive", "30", "edge_app:app"], ready=None)
    (first,) = srv.wait_booted(1)
    idle = socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        # Any worker is over 1 MiB: it recycles after that request, and
        # must not keep the idle connection for the whole --keep-alive.
        wait_for(lambda: not pid_alive(first), 10, message="the recycled worker to exit")
    finally:
        idle.close()


# -- Gunicorn settings: --reuse-port, --no-sendfile, --worker-tmp-dir, --capture-output


def test_reuse_port_lets_two_servers_share_a_port(servers):
    port = free_port()
    first = servers.start(["--reuse-port", "testapp:app"], bind=None, ready=("127.0.0.1", port),
                          env={"RWSGI_CMD_ARGS": "-b 127.0.0.1:%d" % port})
    second = servers.start(["--reuse-port", "testapp:app"], bind=None, ready=("127.0.0.1", port),
                           env={"RWSGI_CMD_ARGS": "-b 127.0.0.1:%d" % port})
    assert first.alive() and second.alive()
    without = run_cli(["-b", "127.0.0.1:%d" % port, "testapp:app"], timeout=15)
    assert without.returncode != 0 and "Address already in use" in without.stderr


@pytest.mark.parametrize("flag,reads", [([], 0), (["--no-sendfile"], 1)])
def test_no_sendfile_reads_and_writes_file_wrappers(servers, tmp_path, flag, reads):
    data = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(data)
    srv = servers.start(flag + ["testapp:app"])
    resp = srv.get("/countedfile?path=%s" % (tmp_path / "f.bin"))
    assert resp.status == 200 and resp.body == data
    counted = int(srv.get("/reads").body)
    assert (counted > 0) == bool(reads), counted


def test_worker_tmp_dir_is_accepted_and_said_unused(servers, tmp_path):
    unused = tmp_path / "heartbeats"
    unused.mkdir()
    srv = servers.start(["--worker-tmp-dir", str(unused), "testapp:app"])
    assert srv.get("/hello").status == 200
    assert "worker_tmp_dir: %s is not used" % unused in srv.stderr()
    assert list(unused.iterdir()) == []


def test_capture_output_sends_the_apps_prints_to_the_error_log(servers, tmp_path):
    log_path = tmp_path / "error.log"
    srv = servers.start(["--capture-output", "--error-logfile", str(log_path), "testapp:app"])
    assert srv.get("/print?text=hello-capture").status == 200
    text = wait_for(lambda: "hello-capture on stderr" in log_path.read_text() and log_path.read_text(), 10)
    assert "hello-capture on stdout" in text
    # Without it, the app's stdout is the server's.
    plain = servers.start(["testapp:app"])
    assert plain.get("/print?text=hello-plain").status == 200
    wait_for(lambda: "hello-plain on stdout" in plain.stdout(), 10, message="the print on stdout")


@pytest.mark.parametrize("inherit", [False, True])
def test_enable_stdio_inheritance_keeps_a_daemons_stderr(servers, tmp_path, inherit):
    pidfile = tmp_path / "rwsgi.pid"
    args = ["-D", "-p", str(pidfile)] + (["-R"] if inherit else []) + ["testapp:app"]
    srv = servers.start(args, wait=False)
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, message="the pidfile"))
    try:
        wait_for(lambda: http_probe(srv.address), 15, message="the daemon to serve")
        wait_for(lambda: "Booting worker" in srv.stderr() or not inherit, 10, message="the daemon's log")
        # Before daemonizing, the log is on the original stderr either way;
        # the workers' boot lines come after: only with -R do they reach it.
        assert ("Booting worker" in srv.stderr()) == inherit, srv.stderr()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), 15, message="the daemon to stop")

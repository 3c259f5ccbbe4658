"""--control-socket: Gunicorn's control protocol, driven by Gunicorn's
own client (gunicornc) and by `rwsgi ctl`; its file mode and who may
connect."""

import json
import os
import stat
import subprocess
import sys

import pytest

from support import rwsgi_bin, run_cli, wait_for, worker_pids

GUNICORNC = os.path.join(sys.prefix, "bin", "gunicornc")


def gunicornc(path, command):
    out = subprocess.run([GUNICORNC, "-s", str(path), "-c", command, "-j"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ctl(path, *command):
    return subprocess.run([rwsgi_bin(), "ctl", "-s", str(path)] + list(command), capture_output=True, text=True,
                          timeout=30)


def test_gunicornc_drives_rwsgi(servers, tmp_path):
    sock = tmp_path / "rwsgi.ctl"
    srv = servers.start(["-w", "2", "--control-socket", str(sock), "testapp:app"])
    wait_for(lambda: len(worker_pids(srv.pid)) == 2, 10, message="2 workers")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    shown = gunicornc(sock, "show workers")
    assert shown["count"] == 2 and sorted(w["pid"] for w in shown["workers"]) == worker_pids(srv.pid)
    assert [w["age"] for w in shown["workers"]] == sorted(w["age"] for w in shown["workers"])

    assert gunicornc(sock, "worker add 2")["total"] == 4
    wait_for(lambda: len(worker_pids(srv.pid)) == 4, 15, message="4 workers")
    assert gunicornc(sock, "worker remove 3")["total"] == 1
    wait_for(lambda: len(worker_pids(srv.pid)) == 1, 15, message="1 worker")

    (victim,) = worker_pids(srv.pid)
    assert gunicornc(sock, "worker kill %d" % victim) == {"success": True, "killed": victim}
    wait_for(lambda: len(worker_pids(srv.pid)) == 1 and victim not in worker_pids(srv.pid), 15, message="a replacement")

    assert srv.get("/hello").status == 200
    (worker,) = gunicornc(sock, "show workers")["workers"]
    # Its last answer, memory and CPU time (from /proc), and the workers
    # its slot held before (every slot was used: 4 workers at once).
    assert worker["last_status"] == 200 and worker["requests"] >= 1, worker
    assert 5 << 20 < worker["rss"] < 1 << 30 and worker["cpu_seconds"] >= 0 and worker["restarts"] >= 1, worker
    stats = gunicornc(sock, "show stats")
    assert stats["pid"] == srv.pid and stats["workers_target"] == 1 and stats["workers_spawned"] >= 5
    # (`worker kill` sends TERM, as Gunicorn's does: the worker exits by itself.)
    assert stats["worker_exits"]["scaled_down"] == 3 and stats["worker_exits"]["exited"] == 1, stats
    assert stats["responses"]["2xx"] >= 1 and stats["bytes_in"] > 0 and stats["bytes_out"] > 0, stats
    assert stats["connections_accepted"] >= 1 and stats["workers_rss"] == worker["rss"], stats
    listeners = gunicornc(sock, "show listeners")
    assert listeners["count"] == 1 and str(srv.port) in listeners["listeners"][0]["address"]
    assert gunicornc(sock, "show config")["workers"] == 2

    old = worker_pids(srv.pid)
    assert gunicornc(sock, "reload") == {"status": "reloading"}
    wait_for(lambda: worker_pids(srv.pid) and not set(old) & set(worker_pids(srv.pid)), 15, message="a reload")
    assert gunicornc(sock, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
    assert srv.wait(20) == 0
    assert not sock.exists()


def test_rwsgi_ctl_and_its_errors(servers, tmp_path):
    sock = tmp_path / "rwsgi.ctl"
    srv = servers.start(["-w", "1", "--control-socket", str(sock), "--control-socket-mode", "0o660", "testapp:app"])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    shown = ctl(sock, "show", "workers")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["count"] == 1
    bad = ctl(sock, "show", "nothing")
    assert bad.returncode == 1 and "Unknown command: show nothing" in bad.stderr
    assert ctl(sock, "help").returncode == 0
    nothing = ctl(tmp_path / "none.ctl", "show", "stats")
    assert nothing.returncode == 1 and "none.ctl" in nothing.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_client_of_another_user_is_refused(servers):
    """Even on a socket anyone may open (mode 0o666, in /tmp): the peer's
    credentials decide; the server goes on."""
    sock = "/tmp/rwsgi-ctl-test-%d.sock" % os.getpid()
    srv = servers.start(["-w", "1", "--control-socket", sock, "--control-socket-mode", "0o666", "testapp:app"])
    other = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", rwsgi_bin(), "ctl", "-s",
                            sock, "show", "stats"], capture_output=True, text=True, timeout=30)
    assert other.returncode == 1, other.stdout
    srv.wait_stderr("a client of another user was refused", timeout=10)
    assert ctl(sock, "show", "stats").returncode == 0


def test_no_control_socket_and_a_taken_path(servers, tmp_path):
    sock = tmp_path / "rwsgi.ctl"
    servers.start(["-w", "1", "--control-socket", str(sock), "--no-control-socket", "testapp:app"])
    assert not sock.exists()
    servers.start(["-w", "1", "--control-socket", str(sock), "testapp:app"])
    taken = run_cli(["-w", "1", "-b", "127.0.0.1:0", "--control-socket", str(sock), "testapp:app"], timeout=20)
    assert taken.returncode != 0 and "another server answers there" in taken.stderr
    assert sock.exists()


def test_rwsgi_top_in_a_terminal_shows_a_busy_workers_request(servers, tmp_path):
    """`rwsgi top` driven in tmux: the worker in a slow request is shown
    busy, with the request and its age."""
    import re
    import shutil
    import threading
    from support import exchange
    assert shutil.which("tmux"), "tmux is installed by tests/run.sh"
    sock = tmp_path / "rwsgi.ctl"
    srv = servers.start(["-w", "2", "--control-socket", str(sock), "testapp:app"])
    slow = threading.Thread(target=lambda: exchange((srv.host, srv.port), b"GET /pid?sleep=5 HTTP/1.1\r\nHost: x\r\n"
                                                    b"Connection: close\r\n\r\n", 15))
    slow.start()
    session = "rwsgi-top-%d" % os.getpid()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20",
                    "%s top -s %s" % (rwsgi_bin(), sock)], check=True, timeout=10)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                                  timeout=10).stdout
        shown = wait_for(lambda: "GET /pid" in screen() and screen(), 10, message="the busy worker's request on screen")
        busy = [line for line in shown.splitlines() if "GET /pid" in line]
        assert len(busy) == 1 and " busy " in busy[0] and " s)" in busy[0], shown
        assert "rwsgi top: master %d" % srv.pid in shown
        assert sum(1 for line in shown.splitlines() if " idle " in line or " busy " in line) == 2
        # Each worker's memory (in M), and the server's rates from the
        # second screen on.
        assert "RSS" in shown and all(re.search(r" \d+\.\dM ", line) for line in busy), shown
        wait_for(lambda: re.search(r"rates: [\d.]+ req/s", screen()), 10, message="the rates on screen")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], timeout=10)
        slow.join()


def test_usr2_hands_the_control_socket_over_once_the_old_master_is_gone(servers, tmp_path):
    """The new master of USR2 does not fight the old one for the control
    socket (or the metrics port): it takes them when the old one goes."""
    import signal
    sock = tmp_path / "rwsgi.ctl"
    pidfile = tmp_path / "rwsgi.pid"
    srv = servers.start(["-w", "1", "-p", str(pidfile), "--control-socket", str(sock), "testapp:app"])
    srv.signal(signal.SIGUSR2)
    upgraded = tmp_path / "rwsgi.pid.2"
    wait_for(lambda: upgraded.exists() and upgraded.read_text().strip(), 20, message="the new master")
    new_master = int(upgraded.read_text())
    assert json.loads(ctl(sock, "show", "stats").stdout)["pid"] == srv.pid
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    try:
        wait_for(lambda: ctl(sock, "show", "stats").returncode == 0
                 and json.loads(ctl(sock, "show", "stats").stdout)["pid"] == new_master, 20,
                 message="the new master on the control socket")
    finally:
        os.kill(new_master, signal.SIGTERM)

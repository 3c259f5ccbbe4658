"""System integration: daemon mode with WINCH, systemd socket activation
(LISTEN_FDS) and readiness notification (NOTIFY_SOCKET)."""

import os
import signal
import socket
import subprocess

from support import APPS_DIR, free_port, get_close, pid_alive, rwsgi_bin, server_env, wait_for, worker_pids


def children(pid):
    """The master's live workers."""
    return worker_pids(pid)


def get(port, path=b"/hello", timeout=5):
    return get_close(("127.0.0.1", port), path, timeout)


def assert_still_listening(listener, port):
    """systemd's socket, after rwsgi has exited: a connection waits in its
    queue for the next start."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        listener.settimeout(5)
        listener.accept()[0].close()


def test_daemon_mode_winch_and_ttin(tmp_path):
    port = free_port()
    pidfile, log = tmp_path / "rwsgi.pid", tmp_path / "error.log"
    args = [rwsgi_bin(), "-D", "-w", "2", "-p", str(pidfile), "--error-logfile", str(log),
            "-b", "127.0.0.1:%d" % port, "--chdir", APPS_DIR, "testapp:app"]
    started = subprocess.run(args, env=server_env(), capture_output=True, timeout=15)
    assert started.returncode == 0, started.stderr
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, message="the pidfile")
    master = int(pidfile.read_text())
    try:
        assert master != os.getpid() and pid_alive(master)
        wait_for(lambda: get(port).startswith(b"HTTP/1.1 200"), 15, message="the daemon to serve")
        wait_for(lambda: len(children(master)) == 2, 10, message="two workers")
        os.kill(master, signal.SIGWINCH)
        wait_for(lambda: children(master) == [], 15, message="WINCH to stop the workers")
        assert pid_alive(master)
        os.kill(master, signal.SIGTTIN)
        wait_for(lambda: get(port).startswith(b"HTTP/1.1 200"), 15, message="TTIN to bring one back")
        assert len(children(master)) == 1
    finally:
        os.kill(master, signal.SIGTERM)
    wait_for(lambda: not pid_alive(master), 15, message="the daemon to stop")
    assert not pidfile.exists()
    assert "Handling signal: winch" in log.read_text()


def test_systemd_socket_activation_and_notify(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(15)

    def pass_as_fd3():
        os.dup2(listener.fileno(), 3)

    env = server_env({"LISTEN_FDS": "1", "NOTIFY_SOCKET": notify_path})
    # LISTEN_PID must be rwsgi's own pid: the shell's, which exec keeps.
    cmd = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", rwsgi_bin(), "-w", "2", "--chdir", APPS_DIR,
           "-b", "127.0.0.1:%d" % free_port(), "testapp:app"]
    proc = subprocess.Popen(cmd, env=env, preexec_fn=pass_as_fd3, close_fds=False,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr", "w"))
    # (Kept open, as systemd keeps it, to start the service again.)
    try:
        ready = notify.recv(4096).decode()
        assert "READY=1" in ready and "MAINPID=%d" % proc.pid in ready, ready
        # Served on the socket systemd passed, not on the configured bind.
        assert get(port).startswith(b"HTTP/1.1 200")
        os.kill(proc.pid, signal.SIGHUP)
        messages = [notify.recv(4096).decode()]
        while "READY=1" not in messages[-1]:
            messages.append(notify.recv(4096).decode())
        assert "RELOADING=1" in messages[0], messages
        assert get(port).startswith(b"HTTP/1.1 200")
        os.kill(proc.pid, signal.SIGTERM)
        assert "STOPPING=1" in notify.recv(4096).decode()
        assert proc.wait(15) == 0
        # The socket systemd passed still listens after rwsgi's stop.
        assert_still_listening(listener, port)
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
        listener.close()
    log = (tmp_path / "stderr").read_text()
    assert "passed by systemd" in log, log


def test_systemd_socket_outlives_a_usr2_upgrade_and_the_final_stop(tmp_path):
    """USR2 hands systemd's socket to a new master, which knows it is
    systemd's: its final stop leaves it listening, as the first master's
    would, for the next start."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    pidfile = tmp_path / "rwsgi.pid"

    def pass_as_fd3():
        os.dup2(listener.fileno(), 3)

    cmd = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", rwsgi_bin(), "-w", "1", "--chdir", APPS_DIR,
           "-p", str(pidfile), "testapp:app"]
    proc = subprocess.Popen(cmd, env=server_env({"LISTEN_FDS": "1"}), preexec_fn=pass_as_fd3, close_fds=False,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr", "w"))
    new = None
    try:
        wait_for(lambda: get(port).startswith(b"HTTP/1.1 200"), 15, message="the first master serving")
        os.kill(proc.pid, signal.SIGUSR2)
        upgraded = tmp_path / "rwsgi.pid.2"
        wait_for(lambda: upgraded.exists() and upgraded.read_text().strip(), 20, message="the new master's pidfile")
        new = int(upgraded.read_text())
        wait_for(lambda: len(worker_pids(new)) == 1, 20, message="the new master's worker")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
        assert get(port).startswith(b"HTTP/1.1 200")
        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not pid_alive(new), 15, message="the new master to exit")
        assert_still_listening(listener, port)
    finally:
        if proc.poll() is None:
            proc.kill()
        if new and pid_alive(new):
            os.kill(new, signal.SIGKILL)
        listener.close()

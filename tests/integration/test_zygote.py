"""The zygote and --preload: workers are forked from a process that
started CPython once (and, with --preload, imported the app), share its
memory, and are still the master's children; HUP loads new code even with
--preload; a zygote killed under load costs no request."""

import os
import signal
import time

from support import APPS_DIR, gunicorn, run_cli, wait_for, worker_pids
from test_reload import Load, fetch, write_app

PRELOAD_APP = '''import os, threading
with open(os.environ["IMPORTS"], "a") as f:
    f.write("%d\\n" % os.getpid())
if os.environ.get("START_THREAD"):
    threading.Thread(target=__import__("time").sleep, args=(60,), name="warmup-cache", daemon=True).start()
BALLAST = [bytes(1024) + str(i).encode() for i in range(20000)]  # ~20 MiB, shared when preloaded

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d" % (os.getpid(), os.getppid())]
'''


def zygotes_of(master):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    zygote = f.read().startswith(b"rwsgi: zygote")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master and zygote:
                found.append(int(entry))
    return found


def shared_fraction(pid):
    """Of a process's resident memory, the part it shares with others."""
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    return (fields["Shared_Clean"] + fields["Shared_Dirty"]) / fields["Rss"]


def start_preloaded(servers, tmp_path, *args, env=None):
    (tmp_path / "preload_app.py").write_text(PRELOAD_APP)
    imports = tmp_path / "imports"
    srv = servers.start(list(args) + ["preload_app:app"], chdir=str(tmp_path),
                        env=dict({"IMPORTS": str(imports)}, **(env or {})))
    return srv, imports


def test_preload_imports_once_and_the_workers_share_it(servers, tmp_path):
    srv, imports = start_preloaded(servers, tmp_path, "-w", "3", "--preload")
    workers = wait_for(lambda: len(worker_pids(srv.pid)) == 3 and worker_pids(srv.pid), 15, message="3 workers")
    (zygote,) = zygotes_of(srv.pid)
    # Imported once, in the zygote; the workers are the master's children.
    assert imports.read_text().split() == [str(zygote)]
    for _ in range(9):
        pid, ppid = map(int, fetch(srv).split())
        assert pid in workers and ppid == srv.pid
    # The app's 20 MiB and the interpreter are shared, copy-on-write.
    for pid in workers:
        assert shared_fraction(pid) > 0.6, (pid, shared_fraction(pid))


def test_without_preload_the_interpreter_is_shared_and_each_worker_imports(servers, tmp_path):
    srv, imports = start_preloaded(servers, tmp_path, "-w", "2")
    workers = wait_for(lambda: len(worker_pids(srv.pid)) == 2 and worker_pids(srv.pid), 15, message="2 workers")
    wait_for(lambda: sorted(map(int, imports.read_text().split())) == workers, 15, message="an import per worker")
    assert len(zygotes_of(srv.pid)) == 1


def test_hup_with_preload_serves_new_code_and_a_broken_import_keeps_the_old(servers, tmp_path):
    write_app(tmp_path, b"v1")
    srv = servers.start(["-w", "2", "--preload", "reload_app:app"], chdir=str(tmp_path))
    assert fetch(srv).startswith(b"v1")
    old_zygote = zygotes_of(srv.pid)
    write_app(tmp_path, b"v2")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: all(fetch(srv).startswith(b"v2") for _ in range(4)), 20, message="the new code served")
    wait_for(lambda: zygotes_of(srv.pid) and zygotes_of(srv.pid) != old_zygote, 10, message="a new zygote")
    write_app(tmp_path, b"v3", broken=True)
    srv.signal(signal.SIGHUP)
    srv.wait_stderr("Reload failed, old workers keep serving: the zygote failed to load the application", timeout=20)
    assert "SyntaxError" in srv.stderr()
    for _ in range(4):
        assert fetch(srv).startswith(b"v2")


def test_a_zygote_killed_under_load_costs_no_request(servers, tmp_path):
    """kill -9 of the zygote: the workers serve on, no request fails; a
    worker that dies then is replaced by a new zygote's."""
    write_app(tmp_path, b"v1")
    srv = servers.start(["-w", "2", "--preload", "reload_app:app"], chdir=str(tmp_path))
    with Load(srv) as load:
        time.sleep(0.3)
        (zygote,) = zygotes_of(srv.pid)
        os.kill(zygote, signal.SIGKILL)
        srv.wait_stderr("The zygote %d exited" % zygote, timeout=10)
        time.sleep(0.5)
    assert load.failed == [], load.failed[:3]
    assert load.sent > 50
    victim = worker_pids(srv.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(worker_pids(srv.pid)) == 2 and victim not in worker_pids(srv.pid), 15,
             message="the replacement")
    wait_for(lambda: len(zygotes_of(srv.pid)) == 1, 10, message="a new zygote")
    for _ in range(4):
        assert fetch(srv).startswith(b"v1")


def test_post_fork_runs_in_each_preloaded_worker(servers, tmp_path):
    evidence = tmp_path / "evidence.jsonl"
    srv = servers.start(["-w", "2", "--preload", "-c", str(APPS_DIR / "hooks_conf.py"), "testapp:app"],
                        env={"HOOK_EVIDENCE": str(evidence)})
    workers = wait_for(lambda: len(worker_pids(srv.pid)) == 2 and worker_pids(srv.pid), 15, message="2 workers")

    def forked():
        lines = evidence.read_text().splitlines() if evidence.exists() else []
        return sorted(int(l.split('"wpid": ')[1].split(",")[0]) for l in lines if '"hook": "post_fork"' in l)
    wait_for(lambda: forked() == workers, 10, message="post_fork in each worker")


def test_a_preload_that_fails_stops_the_start_with_its_traceback(tmp_path):
    (tmp_path / "broken_preload.py").write_text("import no_such_module_here\n")
    result = run_cli(["-w", "2", "--preload", "-b", "127.0.0.1:0", "broken_preload:app"], chdir=tmp_path, timeout=30)
    assert result.returncode == 4
    assert "failed to load the application" in result.stderr
    assert result.stderr.count("No module named 'no_such_module_here'") >= 1
    assert "Reason: App failed to load." in result.stderr


def test_threads_started_at_import_are_named_in_a_warning(servers, tmp_path):
    srv, _ = start_preloaded(servers, tmp_path, "-w", "1", "--preload", env={"START_THREAD": "1"})
    srv.wait_stderr("started threads on import", timeout=10)
    assert "(warmup-cache)" in srv.stderr()


def test_gunicorn_preload_imports_once_too(tmp_path):
    (tmp_path / "preload_app.py").write_text(PRELOAD_APP)
    imports = tmp_path / "imports"
    with gunicorn(["-w", "3", "--preload", "--chdir", str(tmp_path), "preload_app:app"], tmp_path / "g.log",
                  env={"IMPORTS": str(imports)}, cwd=tmp_path):
        assert len(imports.read_text().split()) == 1


def test_each_worker_has_its_own_random_state(servers, tmp_path):
    """`random` was imported in the zygote: CPython's fork protocol reseeds
    it in each worker, as os.fork would."""
    (tmp_path / "random_app.py").write_text(
        "import os, random\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'%d %d' % (os.getpid(), random.getrandbits(64))]\n"
    )
    srv = servers.start(["-w", "2", "--preload", "random_app:app"], chdir=str(tmp_path))
    firsts = {}
    for _ in range(200):
        pid, value = map(int, fetch(srv).split())
        firsts.setdefault(pid, value)
        if len(firsts) == 2:
            break
    assert len(firsts) == 2 and len(set(firsts.values())) == 2, firsts


def test_a_worker_forked_after_usr1_logs_to_the_reopened_file(servers, tmp_path):
    """logrotate moves the error log and sends USR1: the zygote reopens it
    too, so a worker it forks afterwards logs to the new file."""
    log = tmp_path / "error.log"
    srv = servers.start(["-w", "1", "--error-logfile", str(log), "testapp:app"])
    (first,) = wait_for(lambda: worker_pids(srv.pid), 10, message="a worker")
    log.rename(tmp_path / "error.log.1")
    srv.signal(signal.SIGUSR1)
    wait_for(lambda: log.exists(), 10, message="the reopened log")
    time.sleep(0.5)
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: [p for p in worker_pids(srv.pid) if p != first], 10, message="the replacement")[0]
    wait_for(lambda: "Booting worker with pid: %d" % second in log.read_text(), 10, message="its boot in the new log")
    assert "Booting worker with pid: %d" % second not in (tmp_path / "error.log.1").read_text()

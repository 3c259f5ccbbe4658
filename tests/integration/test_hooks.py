"""Gunicorn's server hooks, run by rwsgi: every hook of a config file
(apps/hooks_conf.py) writes a line of evidence, and the tests read which
process ran it, in what order, with what arguments, for every way a
worker ends; hooks that raise or hang; and, where Gunicorn can run the
same config, that it does the same.

Master-side hooks run in rwsgi's hook process (never in the master),
worker-side hooks in the worker they are about."""

import json
import os
import signal
import subprocess
import sys

import pytest

from support import APPS_DIR, exchange, free_port, get_close, gunicorn, refused_config, run_cli, wait_for

CONF = str(APPS_DIR / "hooks_conf.py")
MASTER_SIDE = {"on_starting", "on_reload", "when_ready", "pre_fork", "pre_exec", "child_exit", "nworkers_changed", "on_exit"}


def events(path):
    """The evidence so far, in the order written."""
    if not path.exists():
        return []
    # A last line without its newline is still being written.
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def hooks_of(path, name, **match):
    return [e for e in events(path) if e["hook"] == name and all(e.get(k) == v for k, v in match.items())]


def wait_hook(path, name, count=1, timeout=15, **match):
    """Wait until `name` ran `count` times (with those facts)."""
    return wait_for(lambda: len(hooks_of(path, name, **match)) >= count and hooks_of(path, name, **match), timeout,
                    message="%d x %s %s; evidence: %s" % (count, name, match, [e["hook"] for e in events(path)]))


def start(servers, tmp_path, args, raise_=(), hang=(), app="testapp:app", **kw):
    evidence = tmp_path / "evidence.jsonl"
    env = {"HOOK_EVIDENCE": str(evidence), "HOOK_RAISE": ",".join(raise_), "HOOK_HANG": ",".join(hang)}
    srv = servers.start(["-c", CONF] + args + [app], env=env, **kw)
    return srv, evidence


def hook_process_pid(srv, evidence):
    return hooks_of(evidence, "on_starting")[0]["pid"]


def index(evs, name, **match):
    """Position of the first event `name` (with those facts)."""
    for i, e in enumerate(evs):
        if e["hook"] == name and all(e.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError("no %s %s in %s" % (name, match, [e["hook"] for e in evs]))


def check_lifecycle(evs, master, workers):
    """What Gunicorn's docs and arbiter promise, for a start with
    `workers`, one request, and a graceful stop; `master` is the pid that
    runs the master-side hooks (Gunicorn's master, rwsgi's hook process)."""
    names = [e["hook"] for e in evs]
    assert names[:3] == ["nworkers_changed", "on_starting", "when_ready"], names
    assert (evs[0]["new"], evs[0]["old"]) == (workers, None)
    assert evs[2]["workers"] == 0  # when_ready comes before any fork
    assert all(e["pid"] == master for e in evs if e["hook"] in MASTER_SIDE)
    forked = hooks_of_list(evs, "post_fork")
    assert len(forked) == workers
    for w in forked:
        # Each worker: pre_fork (before the fork, pid unknown yet), then in
        # the worker itself post_fork, post_worker_init; at the end
        # worker_exit, then child_exit in the master's hook runner.
        assert w["wpid"] == w["pid"] != master
        pre = index(evs, "pre_fork", age=w["age"])
        assert evs[pre]["wpid"] == "[booting]"
        assert pre < index(evs, "post_fork", wpid=w["wpid"]) < index(evs, "post_worker_init", wpid=w["wpid"])
        assert index(evs, "post_worker_init", wpid=w["wpid"]) < index(evs, "worker_exit", wpid=w["wpid"])
        assert index(evs, "worker_exit", wpid=w["wpid"]) < index(evs, "child_exit", wpid=w["wpid"])
        assert evs[index(evs, "post_worker_init", wpid=w["wpid"])]["app"] is True
    assert sorted(w["age"] for w in forked) == list(range(1, workers + 1))
    # The request (and any readiness probe), served by the workers.
    served = hooks_of_list(evs, "pre_request")
    assert "/hello" in [e["path"] for e in served]
    assert all(e["pid"] in {w["wpid"] for w in forked} for e in served)
    assert len(hooks_of_list(evs, "post_request")) == len(served)
    assert names[-1] == "on_exit"
    assert sorted(e["wpid"] for e in hooks_of_list(evs, "child_exit")) == sorted(w["wpid"] for w in forked)
    assert "worker_int" not in names and "worker_abort" not in names and "on_reload" not in names


def hooks_of_list(evs, name):
    return [e for e in evs if e["hook"] == name]


def test_every_hook_runs_in_gunicorns_order_as_under_gunicorn(servers, tmp_path):
    """Start, one request, TERM: the same hooks in the same order as
    Gunicorn's, each in the process Gunicorn runs it in (the master's
    side in the hook process here)."""
    srv, evidence = start(servers, tmp_path, ["-w", "2"])
    srv.wait_booted(2)
    wait_hook(evidence, "post_worker_init", 2)
    assert srv.get("/hello").status == 200
    wait_hook(evidence, "post_request")
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    evs = events(evidence)
    runner = hook_process_pid(srv, evidence)
    assert runner != srv.pid
    check_lifecycle(evs, runner, 2)
    assert all(e["server_pid"] == srv.pid for e in evs if "server_pid" in e)
    assert hooks_of_list(evs, "on_starting")[0]["cfg_timeout"] == 30
    # server.log and worker.log write to the error log.
    log = srv.stderr()
    assert "hooks_conf: on_starting" in log
    assert all("hooks_conf: post_fork in %d" % w["wpid"] in log for w in hooks_of_list(evs, "post_fork"))

    gevidence = tmp_path / "gunicorn.jsonl"
    env = {"HOOK_EVIDENCE": str(gevidence)}
    with gunicorn(["-w", "2", "-c", CONF, "testapp:app"], tmp_path / "gunicorn.log", env=env) as address:
        wait_hook(gevidence, "post_worker_init", 2)
        assert get_close(address).startswith(b"HTTP/1.1 200")
        wait_hook(gevidence, "post_request")
        gmaster = hooks_of(gevidence, "on_starting")[0]["pid"]
    check_lifecycle(events(gevidence), gmaster, 2)


def request_evidence(evidence, since, path):
    return [e for e in events(evidence)[since:] if e["hook"] in ("pre_request", "post_request") and e["path"] == path]


@pytest.mark.parametrize("server", ["rwsgi", "gunicorn"])
def test_request_hooks_see_gunicorns_req_and_resp(servers, tmp_path, server):
    """pre_request and post_request get the request head and the response
    as Gunicorn gives them, for a success, an app error, and a
    pre_request that raises (500, the app not called)."""
    evidence = tmp_path / "evidence.jsonl"
    requests = [
        (b"GET /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Trace: t1\r\nConnection: close\r\n\r\n", "/hello"),
        (b"GET /crash HTTP/1.0\r\nX-Trace: t2\r\n\r\n", "/crash"),
    ]

    def run(address):
        for raw, path in requests:
            before = len(events(evidence))
            reply = exchange(address, raw)
            wait_for(lambda: len(request_evidence(evidence, before, path)) == 2, 10, message="both request hooks")
            yield reply, request_evidence(evidence, before, path)

    if server == "rwsgi":
        srv, _ = start(servers, tmp_path, ["-w", "1"])
        results = list(run((srv.host, srv.port)))
    else:
        with gunicorn(["-w", "1", "-c", CONF, "testapp:app"], tmp_path / "g.log", env={"HOOK_EVIDENCE": str(evidence)}) as a:
            results = list(run(a))
    (ok, (pre, post)), (crash, (cpre, cpost)) = results
    assert ok.startswith(b"HTTP/1.1 200")
    assert (pre["method"], pre["uri"], pre["path"], pre["query"], pre["version"]) == ("GET", "/hello?a=1&b=2", "/hello", "a=1&b=2", [1, 1])
    assert pre["headers"] == [["X-TRACE", "t1"]]
    assert post["nr"] == pre["nr"] + 1  # counted once served
    assert (post["status"], post["status_code"], post["environ_path"], post["content_type"]) == ("200 OK", 200, "/hello", ["text/plain"])
    assert crash.startswith(b"HTTP/1.1 500") or crash.startswith(b"HTTP/1.0 500")
    assert cpre["version"] == [1, 0]
    # The app raised before start_response: rwsgi's resp is the 500 it
    # sent, Gunicorn's has no status (a documented difference).
    sent = ("500 Internal Server Error", 500) if server == "rwsgi" else (None, None)
    assert (cpost["status"], cpost["status_code"], cpost["environ_path"]) == sent + ("/crash",)


@pytest.mark.parametrize("server", ["rwsgi", "gunicorn"])
def test_a_pre_request_that_raises_is_a_500_and_the_app_is_not_called(servers, tmp_path, server):
    evidence = tmp_path / "evidence.jsonl"
    env = {"HOOK_EVIDENCE": str(evidence), "HOOK_RAISE": "pre_request,post_request"}
    raw = b"GET /print?text=app-was-called HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    log_path = tmp_path / "g.log"
    if server == "rwsgi":
        srv = servers.start(["-w", "1", "-c", CONF, "testapp:app"], env=env)
        reply = exchange((srv.host, srv.port), raw)
        again = get_close((srv.host, srv.port))
        log = lambda: srv.stderr() + srv.stdout()  # noqa: E731
    else:
        with gunicorn(["-w", "1", "-c", CONF, "testapp:app"], log_path, env=env) as address:
            reply = exchange(address, raw)
            again = get_close(address)
        log = lambda: log_path.read_text()  # noqa: E731
    assert reply.startswith(b"HTTP/1.1 500")
    # The worker goes on serving.
    assert again.startswith(b"HTTP/1.1 500")
    # (The readiness probe's request too.)
    wait_for(lambda: len(hooks_of(evidence, "post_request")) >= 2, 10, message="post_request after each")
    for post in hooks_of(evidence, "post_request"):
        assert (post["status"], post["environ_path"]) == ("no response", None)
    wait_for(lambda: "Exception in post_request hook" in log(), 10, message="post_request's error logged")
    assert "pre_request failed on purpose" in log()
    # Named by the error line only: the app never printed it.
    assert log().count("app-was-called") == 1


def workers_of(evidence):
    """Live workers as the evidence says: booted and not yet exited."""
    booted = {e["wpid"] for e in hooks_of(evidence, "post_worker_init")}
    gone = {e["wpid"] for e in hooks_of(evidence, "child_exit")}
    return sorted(booted - gone)


def test_child_exit_for_every_way_a_worker_ends(servers, tmp_path):
    """kill -9, a stuck worker killed (--timeout), --max-requests, TTOU,
    HUP, and the graceful stop: child_exit for each, in the hook process,
    with the worker's pid and age; worker_exit in the worker where it
    exits by itself; worker_abort in the stuck one; nworkers_changed and
    on_reload as Gunicorn calls them."""
    srv, evidence = start(servers, tmp_path, ["-w", "2", "--timeout", "2", "--max-requests", "40", "--hook-timeout", "5"])
    wait_hook(evidence, "post_worker_init", 2)

    victim = workers_of(evidence)[0]
    os.kill(victim, signal.SIGKILL)
    exit9 = wait_hook(evidence, "child_exit", wpid=victim)[0]
    assert exit9["aborted"] is False
    assert not hooks_of(evidence, "worker_exit", wpid=victim)  # killed: no Python ran
    wait_for(lambda: len(workers_of(evidence)) == 2, 15, message="a replacement")

    # A stuck request: SIGABRT, worker_abort and worker_exit in the worker,
    # then child_exit with worker.aborted.
    try:
        exchange((srv.host, srv.port), b"GET /pid?sleep=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    except OSError:
        pass
    stuck = wait_hook(evidence, "worker_abort")[0]["wpid"]
    wait_hook(evidence, "worker_exit", wpid=stuck)
    assert wait_hook(evidence, "child_exit", wpid=stuck)[0]["aborted"] is True
    assert index(events(evidence), "worker_abort", wpid=stuck) < index(events(evidence), "child_exit", wpid=stuck)
    wait_for(lambda: len(workers_of(evidence)) == 2, 15, message="a replacement")

    # --max-requests: a worker that served 40 requests goes.
    before = set(workers_of(evidence))
    for _ in range(100):
        if not before <= set(workers_of(evidence)):
            break
        srv.get("/hello")
    recycled = wait_for(lambda: before - set(workers_of(evidence)), 15, message="a recycled worker")
    for pid in recycled:
        assert hooks_of(evidence, "worker_exit", wpid=pid)
    wait_for(lambda: len(workers_of(evidence)) == 2, 15, message="a replacement")

    # TTOU: nworkers_changed(1, 2), the oldest worker goes.
    oldest = min(workers_of(evidence), key=lambda p: hooks_of(evidence, "post_fork", wpid=p)[0]["age"])
    srv.signal(signal.SIGTTOU)
    wait_hook(evidence, "nworkers_changed", new=1, old=2)
    wait_hook(evidence, "child_exit", wpid=oldest)
    assert hooks_of(evidence, "worker_exit", wpid=oldest)
    srv.signal(signal.SIGTTIN)
    wait_hook(evidence, "nworkers_changed", new=2, old=1)
    wait_for(lambda: len(workers_of(evidence)) == 2, 15, message="TTIN's worker")

    # HUP: nworkers_changed(2, 2), on_reload, then new workers, then the
    # old ones' exits.
    old = workers_of(evidence)
    srv.signal(signal.SIGHUP)
    reload_at = wait_hook(evidence, "on_reload")[0]
    assert hooks_of(evidence, "nworkers_changed", new=2, old=2)
    for pid in old:
        wait_hook(evidence, "child_exit", wpid=pid)
    evs = events(evidence)
    reloaded = index(evs, "on_reload")
    new = [e for e in evs[reloaded:] if e["hook"] == "post_fork"]
    assert len(new) >= 2 and reload_at["t"] <= new[0]["t"]
    wait_for(lambda: len(workers_of(evidence)) == 2, 15, message="the new workers")

    # The graceful stop: every worker's worker_exit and child_exit, then
    # on_exit last.
    last = workers_of(evidence)
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    evs = events(evidence)
    for pid in last:
        assert index(evs, "worker_exit", wpid=pid) < index(evs, "child_exit", wpid=pid)
    assert evs[-1]["hook"] == "on_exit"
    runner = hook_process_pid(srv, evidence)
    assert all(e["pid"] == runner for e in evs if e["hook"] in MASTER_SIDE - {"on_starting"}), \
        "one hook process, never restarted"
    assert "raised" not in srv.stderr()


def test_a_fast_stop_runs_worker_int_then_worker_exit(servers, tmp_path):
    """INT to the master (Gunicorn's quick shutdown): each worker runs
    worker_int, then worker_exit, then the master's child_exit and
    on_exit."""
    srv, evidence = start(servers, tmp_path, ["-w", "2"])
    wait_hook(evidence, "post_worker_init", 2)
    workers = workers_of(evidence)
    srv.signal(signal.SIGINT)
    assert srv.wait(20) == 0
    evs = events(evidence)
    for pid in workers:
        assert index(evs, "worker_int", wpid=pid) < index(evs, "worker_exit", wpid=pid) < index(evs, "child_exit", wpid=pid)
        ints = hooks_of_list(evs, "worker_int")
        assert [e["alive"] for e in ints if e["wpid"] == pid] == [False]
    assert evs[-1]["hook"] == "on_exit"


def test_a_master_side_hook_that_raises_is_logged_and_the_server_goes_on(servers, tmp_path):
    raising = ["on_starting", "when_ready", "pre_fork", "child_exit", "nworkers_changed"]
    srv, evidence = start(servers, tmp_path, ["-w", "2"], raise_=raising)
    wait_hook(evidence, "post_worker_init", 2)
    victim = workers_of(evidence)[0]
    os.kill(victim, signal.SIGKILL)
    wait_hook(evidence, "child_exit", wpid=victim)
    assert srv.get("/hello").status == 200
    log = srv.stderr()
    for hook in raising:
        assert ("The %s hook raised:\nTraceback" % hook) in log, hook
        assert ("RuntimeError: %s failed on purpose" % hook) in log
    wait_for(lambda: len(hooks_of(evidence, "post_worker_init")) == 3, 15, message="the replacement")
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    assert events(evidence)[-1]["hook"] == "on_exit"


def test_a_master_side_hook_that_hangs_is_cut_at_hook_timeout(servers, tmp_path):
    """A when_ready and a child_exit that never return: each is logged and
    its process killed after --hook-timeout; the workers are forked and
    replaced meanwhile or right after, and the hooks after it still run."""
    srv, evidence = start(servers, tmp_path, ["-w", "1", "--hook-timeout", "2"], hang=["when_ready", "child_exit"],
                          ready=None)
    srv.wait_booted(1, timeout=20)
    assert srv.get("/hello").status == 200
    wait_for(lambda: "its when_ready hook did not return within 2 s (--hook-timeout)" in srv.stderr(), 10,
             message="the timeout logged")
    victim = workers_of(evidence)[0]
    os.kill(victim, signal.SIGKILL)
    wait_hook(evidence, "child_exit", wpid=victim)
    wait_for(lambda: srv.stderr().count("did not return within 2 s") == 2, 10, message="the second timeout")
    wait_for(lambda: len(hooks_of(evidence, "post_worker_init")) == 2, 15, message="the replacement")
    assert srv.get("/hello").status == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(30) == 0
    assert events(evidence)[-1]["hook"] == "on_exit"


def test_a_worker_side_hook_that_raises(servers, tmp_path):
    """post_fork raising fails the worker's boot as under Gunicorn (the
    server does not start); post_request and worker_exit raising are
    logged and change nothing."""
    evidence = tmp_path / "evidence.jsonl"
    env = {"HOOK_EVIDENCE": str(evidence), "HOOK_RAISE": "post_fork"}
    result = run_cli(["-w", "1", "-b", "127.0.0.1:%d" % free_port(), "-c", CONF, "testapp:app"], env=env, timeout=30)
    assert result.returncode == 3  # Gunicorn's "Worker failed to boot."
    assert "Exception in worker process" in result.stderr
    assert "RuntimeError: post_fork failed on purpose" in result.stderr
    # Gunicorn's worker_exit still runs in the worker that failed; the
    # master's child_exit too (where Gunicorn skips it), then on_exit.
    failed = hooks_of(evidence, "post_fork")[0]["wpid"]
    assert hooks_of(evidence, "worker_exit", wpid=failed)
    assert hooks_of(evidence, "child_exit", wpid=failed)
    assert events(evidence)[-1]["hook"] == "on_exit"
    assert not hooks_of(evidence, "post_worker_init")

    (tmp_path / "second").mkdir()
    srv, evidence = start(servers, tmp_path / "second", ["-w", "1"], raise_=["post_request", "worker_exit"])
    assert srv.get("/hello").status == 200
    wait_for(lambda: "Exception in post_request hook" in srv.stderr(), 10, message="post_request's error")
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    assert "Exception in worker_exit hook" in srv.stderr()


def test_worker_side_hooks_that_hang_are_bounded_by_the_worker_timeouts(servers, tmp_path):
    """A pre_request that never returns is a stuck request: --timeout
    kills the worker (worker_abort runs first) and the next one serves."""
    srv, evidence = start(servers, tmp_path, ["-w", "1", "--timeout", "2"], hang=["pre_request"], ready=None)
    wait_hook(evidence, "post_worker_init")
    try:
        get_close((srv.host, srv.port), timeout=10)
    except OSError:
        pass
    stuck = wait_hook(evidence, "worker_abort")[0]["wpid"]
    wait_hook(evidence, "child_exit", wpid=stuck)
    assert "WORKER TIMEOUT" in srv.stderr()


def test_a_hook_with_the_wrong_arguments_is_refused_at_start_as_by_gunicorn(tmp_path):
    conf, stderr = refused_config(tmp_path, "def on_starting(server, extra):\n    pass\n")
    assert "Invalid value for on_starting" in stderr
    assert "on_starting must take 1 positional argument" in stderr
    gunicorn_exe = os.path.join(sys.prefix, "bin", "gunicorn")
    g = subprocess.run([gunicorn_exe, "-c", str(conf), "testapp:app"], cwd=str(APPS_DIR), capture_output=True, text=True,
                       timeout=30)
    assert g.returncode != 0 and "Invalid value for on_starting" in g.stderr


def test_a_hook_given_as_a_dotted_path_runs(servers, tmp_path):
    """Gunicorn also takes a hook as "module.function"."""
    evidence = tmp_path / "evidence.jsonl"
    conf = tmp_path / "conf.py"
    conf.write_text("when_ready = 'hooks_conf.when_ready'\npost_fork = 'hooks_conf.post_fork'\n")
    srv = servers.start(["-w", "1", "-c", str(conf), "--pythonpath", str(APPS_DIR), "testapp:app"],
                        env={"HOOK_EVIDENCE": str(evidence)})
    wait_hook(evidence, "when_ready")
    wait_hook(evidence, "post_fork")
    assert srv.get("/hello").status == 200


def test_usr2_runs_pre_exec_before_the_new_master_starts(servers, tmp_path):
    srv, evidence = start(servers, tmp_path, ["-w", "1", "-p", str(tmp_path / "rwsgi.pid")])
    wait_hook(evidence, "post_worker_init")
    srv.signal(signal.SIGUSR2)
    pre_exec = wait_hook(evidence, "pre_exec")[0]
    starting = wait_hook(evidence, "on_starting", 2)[1]
    assert pre_exec["t"] <= starting["t"] and starting["server_pid"] != srv.pid
    new_master = starting["server_pid"]
    wait_hook(evidence, "post_worker_init", 2)
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0
    os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: hooks_of(evidence, "on_exit", server_pid=new_master), 20, message="the new master's on_exit")


def test_hooks_log_to_the_reopened_error_log_after_usr1(servers, tmp_path):
    """logrotate moves the error log and sends USR1: what master-side hooks
    log goes to the new file."""
    log = tmp_path / "error.log"
    srv, evidence = start(servers, tmp_path, ["-w", "1", "--error-logfile", str(log)])
    first = wait_hook(evidence, "post_worker_init")[0]["wpid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "hooks_conf: child_exit %d" % first in log.read_text(), 10, message="child_exit's line")
    log.rename(tmp_path / "error.log.1")
    srv.signal(signal.SIGUSR1)
    wait_for(lambda: log.exists(), 10, message="the reopened log")
    second = wait_for(lambda: [p for p in workers_of(evidence) if p != first], 15, message="the replacement")[0]
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: "hooks_conf: child_exit %d" % second in log.read_text(), 10, message="child_exit in the new log")


def test_a_relative_config_path_is_found_after_chdir(servers, tmp_path):
    """`-c conf.py` names a file in the directory rwsgi starts in, also for
    the hook process and the workers, which run in the --chdir one."""
    (tmp_path / "conf.py").write_text((APPS_DIR / "hooks_conf.py").read_text())
    evidence = tmp_path / "evidence.jsonl"
    srv = servers.start(["-w", "1", "-c", "conf.py", "testapp:app"], cwd=str(tmp_path),
                        env={"HOOK_EVIDENCE": str(evidence)})
    wait_hook(evidence, "when_ready")
    wait_hook(evidence, "post_worker_init")
    assert srv.get("/hello").status == 200


def test_a_memory_recycle_runs_worker_exit_and_child_exit(servers, tmp_path):
    """--max-worker-memory: the worker over it finishes its request and
    goes, as a --max-requests recycle does."""
    srv, evidence = start(servers, tmp_path, ["-w", "1", "--max-worker-memory", "1"])
    first = wait_hook(evidence, "post_worker_init")[0]["wpid"]
    srv.get("/hello")
    wait_hook(evidence, "child_exit", wpid=first)
    evs = events(evidence)
    assert index(evs, "worker_exit", wpid=first) < index(evs, "child_exit", wpid=first)

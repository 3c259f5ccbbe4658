"""The two server-hook recipes real deployments copy from Gunicorn's docs,
run with the real libraries, on rwsgi and on Gunicorn with the same
config file and app:

- prometheus_client's multiprocess mode (apps/recipe_metrics_conf.py,
  apps/recipe_metrics_app.py): the workers share metrics through files
  in $PROMETHEUS_MULTIPROC_DIR; a "live" gauge counts only the files of
  live workers, which holds only if the master's child_exit hook removes
  each dead worker's files. So the live-worker gauge must equal the
  number of live workers after every way a worker ends: kill -9,
  --max-requests recycling, TTOU, HUP (and TTIN adds one back). The
  hook runs in rwsgi's hook process, which must see the `-e` variables.

- the OpenTelemetry SDK set up in post_fork (apps/recipe_tracing_conf.py,
  apps/recipe_tracing_app.py): a BatchSpanProcessor's thread does not
  survive a fork, so each worker makes its provider in post_fork; the
  spans still queued at a graceful stop are flushed by the SDK's atexit
  handler, which needs Python's normal finalization in the workers.

The worker processes are found as the master's live children, less
rwsgi's hook process; a worker counts once it has imported the app (its
pid appears in the per-pid "liveall" gauge)."""

import collections
import contextlib
import json
import os
import re
import signal
import time

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

import rawhttp
import support
from support import APPS_DIR, gunicorn, runner_venv_prefix, wait_for

METRICS_CONF = APPS_DIR / "recipe_metrics_conf.py"
TRACING_CONF = APPS_DIR / "recipe_tracing_conf.py"
SETTLE_TIMEOUT = 15.0

SERVERS = ["rwsgi", "gunicorn"]


def venv():
    """The libraries live in the virtualenv that runs pytest (and Gunicorn)."""
    prefix = runner_venv_prefix()
    return ["--virtualenv", prefix] if prefix else []


# -- the servers, driven the same way -----------------------------------------


class Target:
    """A running rwsgi or Gunicorn: its address, master pid and log."""

    def __init__(self, name, address, master_pid, log, stop):
        self.name = name
        self.address = address
        self.master_pid = master_pid
        self._log = log
        self._stop = stop

    def get(self, path):
        """A GET on a new connection (Connection: close), so that any
        worker may take it; the response body as text."""
        resp = rawhttp.request(self.address, "GET", path)
        assert resp.status == 200, (self.name, path, resp)
        return resp.body.decode()

    def signal(self, sig):
        os.kill(self.master_pid, sig)

    def log(self):
        return self._log()

    def stop(self):
        """Graceful stop (SIGTERM), waited for."""
        return self._stop()


@contextlib.contextmanager
def start(kind, servers, tmp_path, args, env):
    """rwsgi (through the `servers` fixture, with the virtualenv) or
    Gunicorn, started with the same `args` and environment."""
    if kind == "rwsgi":
        srv = servers.start(venv() + args, env=env)
        yield Target("rwsgi", (srv.host, srv.port), srv.pid, srv.stderr, srv.stop)
        return
    log_path = tmp_path / "gunicorn.log"
    with contextlib.ExitStack() as stack:
        address = stack.enter_context(gunicorn(args, log_path, env=env))
        log = lambda: log_path.read_text(errors="replace")  # noqa: E731
        # "[date] [MASTER PID] [INFO] Listening at: ..."
        master = int(re.search(r"\[(\d+)\] \[INFO\] Listening at: ", log()).group(1))
        yield Target("gunicorn", address, master, log, stack.close)


def worker_pids(master_pid):
    """The master's live workers (not rwsgi's hook process or zygote)."""
    return set(support.worker_pids(master_pid))


def assert_no_tracebacks(target):
    """A hook that raised is logged with its traceback, by both servers."""
    assert "Traceback" not in target.log(), "%s logged a traceback:\n%s" % (target.name, target.log())


# -- prometheus_client multiprocess mode -----------------------------------------


def metrics_env(tmp_path, hooks=True):
    """The metrics directory, in the server's own environment (so the
    master's side, Gunicorn's master and rwsgi's hook process, sees it)
    and through -e (for rwsgi's workers and hook process too)."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # The live gauges' files of a worker of "an earlier run" (a pid that
    # cannot exist): on_starting must remove them, or they are counted.
    for mode, name in (("livesum", "rwsgi_test_live_workers"), ("liveall", "rwsgi_test_worker_pids")):
        stale = MmapedDict(str(directory / ("gauge_%s_999999999.db" % mode)))
        stale.write_value(mmap_key(name, name, [], [], "stale"), 1.0, 0.0)
        stale.close()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    args = ["-e", "PROMETHEUS_MULTIPROC_DIR=%s" % directory] + (["-c", str(METRICS_CONF)] if hooks else [])
    return args, env


def scrape(target):
    """(live-worker gauge, pids the per-pid gauge names, /pid requests
    counted), from /metrics parsed with prometheus_client's parser."""
    families = {f.name: f for f in text_string_to_metric_families(target.get("/metrics"))}
    live = families["rwsgi_test_live_workers"].samples
    assert len(live) == 1, live
    pids = {int(s.labels["pid"]) for s in families["rwsgi_test_worker_pids"].samples}
    requests = families.get("rwsgi_test_requests")
    pid_requests = sum(
        s.value for s in (requests.samples if requests else []) if s.name.endswith("_total") and s.labels.get("path") == "/pid"
    )
    return live[0].value, pids, pid_requests


def settled(target, count, gone=()):
    """Wait until the server has `count` workers, none of `gone`, all of
    them counted by the metrics, and the metrics count no other process
    (the dead ones' files removed by child_exit); the worker pids.
    A server that left a dead worker's files would time out here, with
    what the metrics said last."""
    seen = {}

    def check():
        workers = worker_pids(target.master_pid)
        seen["workers"] = workers
        if len(workers) != count or workers & set(gone):
            return False
        seen["live"], seen["pids"], _ = scrape(target)
        return seen["pids"] == workers and seen["live"] == count and workers

    try:
        return wait_for(check, SETTLE_TIMEOUT, interval=0.1)
    except AssertionError:
        raise AssertionError(
            "%s: wanted %d workers (not %s) counted exactly by the live gauges; last seen: %r\nlog:\n%s"
            % (target.name, count, sorted(gone), seen, target.log())
        ) from None


@pytest.mark.parametrize("kind", SERVERS)
def test_live_worker_gauge_follows_kill_ttou_ttin_and_hup(kind, servers, tmp_path):
    """The livesum gauge equals the live workers after start, after a
    worker's kill -9 and replacement, TTOU, TTIN and a HUP reload."""
    conf_args, env = metrics_env(tmp_path)
    with start(kind, servers, tmp_path, ["-w", "3"] + conf_args + ["recipe_metrics_app:app"], env) as target:
        # on_starting wiped the directory: the stale file is not counted.
        first = settled(target, 3)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        after_kill = settled(target, 3, gone=[victim])

        # One signal at a time: the kernel merges a signal sent while one
        # of the same kind is pending.
        target.signal(signal.SIGTTOU)
        after_ttou = settled(target, 2)
        assert after_ttou < after_kill

        target.signal(signal.SIGTTIN)
        after_ttin = settled(target, 3)
        assert after_ttou < after_ttin

        target.signal(signal.SIGHUP)
        # A reload replaces every worker.
        settled(target, 3, gone=after_ttin)
        assert_no_tracebacks(target)


def test_rwsgi_keeps_the_live_gauges_right_without_any_hook(servers, tmp_path):
    """No config file at all: rwsgi itself empties the directory at start
    and removes each dead worker's live-gauge files (kill -9, TTOU, HUP)."""
    conf_args, env = metrics_env(tmp_path, hooks=False)
    with start("rwsgi", servers, tmp_path, ["-w", "2"] + conf_args + ["recipe_metrics_app:app"], env) as target:
        first = settled(target, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        after_kill = settled(target, 2, gone=[victim])
        target.signal(signal.SIGTTOU)
        settled(target, 1)
        # HUP reads the settings again: -w 2, every worker replaced.
        target.signal(signal.SIGHUP)
        settled(target, 2, gone=after_kill)
        assert "metric files of an earlier run" in target.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_live_worker_gauge_survives_max_requests_recycling(kind, servers, tmp_path):
    """Workers recycled by --max-requests leave the live gauge right, and
    the request counter keeps the recycled workers' counts."""
    conf_args, env = metrics_env(tmp_path)
    args = ["-w", "3", "--max-requests", "5"] + conf_args + ["recipe_metrics_app:app"]
    with start(kind, servers, tmp_path, args, env) as target:
        first = settled(target, 3)
        sent = 0
        # Until every first worker has been recycled (each has served 5
        # requests, /metrics ones included); bounded.
        deadline = time.monotonic() + 20
        while worker_pids(target.master_pid) & first:
            assert time.monotonic() < deadline, "%s: first workers %s not all recycled after %d requests; log:\n%s" % (
                kind, sorted(first), sent, target.log())
            target.get("/pid")
            sent += 1
        settled(target, 3, gone=first)
        # Counters are not "live": the dead workers' counts stay.
        assert scrape(target)[2] == sent
        assert_no_tracebacks(target)


# -- OpenTelemetry set up in post_fork --------------------------------------------


@pytest.mark.parametrize("kind", SERVERS)
def test_opentelemetry_batch_spans_from_every_worker_reach_the_exporter(kind, servers, tmp_path):
    """A provider made in post_fork exports every request's span from
    every worker, the batch still queued at a graceful stop included."""
    span_file = tmp_path / "spans.jsonl"
    env = {"SPAN_FILE": str(span_file)}
    args = ["-w", "3", "-e", "SPAN_FILE=%s" % span_file, "-c", str(TRACING_CONF), "recipe_tracing_app:app"]
    served = collections.Counter()
    with start(kind, servers, tmp_path, args, env) as target:
        # New connections until each of the 3 workers has answered some.
        deadline = time.monotonic() + 20
        while len(served) < 3:
            assert time.monotonic() < deadline, "%s: only workers %s answered; log:\n%s" % (kind, dict(served), target.log())
            served[int(target.get("/pid"))] += 1
        status = target.stop()
        if kind == "rwsgi":
            assert status == 0, target.log()
        log = target.log()
    assert "Traceback" not in log, log

    spans = [json.loads(line) for line in span_file.read_text().splitlines()] if span_file.exists() else []
    # The BatchSpanProcessor waits 5 s before an export: what the file
    # holds was flushed by the workers' atexit at the stop.
    exported = collections.Counter(s["pid"] for s in spans if s["target"] == "/pid" and s["name"] == "request")
    assert exported == served, "%s: spans exported per worker %s, requests served %s; log:\n%s" % (
        kind, dict(exported), dict(served), log)
    # Each worker's own provider (its post_fork's worker.age), and only
    # that worker's spans went through it.
    ages = {}
    for s in spans:
        ages.setdefault(s["pid"], set()).add(s["worker_age"])
    assert all(len(a) == 1 and None not in a for a in ages.values()), ages
    assert len({a for per_pid in ages.values() for a in per_pid}) == len(ages), ages

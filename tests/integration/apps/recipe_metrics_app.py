"""The app side of Gunicorn's prometheus_client multiprocess recipe
(test_hook_recipes.py): metrics shared by the workers through the files
in $PROMETHEUS_MULTIPROC_DIR, read back by /metrics with a
MultiProcessCollector. /pid and /ppid say which worker answered and who
its master is."""

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest, multiprocess

# "live" modes count only the files of processes still alive: dead
# workers' files must be removed by the config's child_exit hook
# (multiprocess.mark_process_dead), or they go on counting.
LIVE_WORKERS = Gauge(
    "rwsgi_test_live_workers", "Workers that imported the app and are alive", multiprocess_mode="livesum"
)
# The same, one sample per worker with a `pid` label: says which pids the
# metrics still count.
WORKER_PIDS = Gauge("rwsgi_test_worker_pids", "One sample per live worker", multiprocess_mode="liveall")
# Counters keep the counts of dead workers (their files stay).
REQUESTS = Counter("rwsgi_test_requests", "Requests served, by path", ["path"])

# At import, so every worker that booted counts, whether or not it has
# served anything yet.
LIVE_WORKERS.set(1)
WORKER_PIDS.set(1)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    REQUESTS.labels(path=path).inc()
    if path == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
        content_type = CONTENT_TYPE_LATEST
    elif path == "/pid":
        body, content_type = str(os.getpid()).encode(), "text/plain"
    elif path == "/ppid":
        body, content_type = str(os.getppid()).encode(), "text/plain"
    else:
        body, content_type = b"ok", "text/plain"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]

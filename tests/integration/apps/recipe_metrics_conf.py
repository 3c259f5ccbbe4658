"""Gunicorn's prometheus_client multiprocess recipe, as its docs give it:
a clean metrics directory at start, and each dead worker's live-gauge
files removed when the master reaps it. Used by test_hook_recipes.py
with rwsgi and with Gunicorn."""

import os


def on_starting(server):
    # Files left by an earlier run's workers would be counted as well.
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

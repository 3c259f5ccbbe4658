"""Routes for the --threads tests (served as `threads_app:app`).

State shared by the request threads of one worker lives in module globals,
guarded by one lock: how many requests are in the app at once (and the most
seen), and which requests are in progress by name. The response helpers
are testapp's.
"""

import json
import os
import threading
import time

import testapp
from testapp import _query

_lock = threading.Lock()
_in_flight = 0
_peak = 0
_threads_seen = set()
# Names of the requests now in the app (?name=...), for tests that must
# know a request has reached the app before they go on.
_running = {}


def _respond(start_response, body, status="200 OK", content_type="text/plain", headers=()):
    """testapp's response, with the worker's pid in X-Pid."""
    return testapp._respond(start_response, body, status, content_type, [("X-Pid", str(os.getpid()))] + list(headers))


def _json(start_response, obj):
    return _respond(start_response, json.dumps(obj, sort_keys=True), content_type="application/json")


class _Tracked:
    """Counts the request in flight (and by name) while the block runs."""

    def __init__(self, environ):
        query = _query(environ)
        self.name = query.get("name")
        # ?mark=PATH: create that file once the request is in the app (for
        # tests that cannot ask this worker, its threads being all busy).
        self.mark = query.get("mark")

    def __enter__(self):
        global _in_flight, _peak
        with _lock:
            _in_flight += 1
            _peak = max(_peak, _in_flight)
            _threads_seen.add(threading.get_ident())
            if self.name:
                _running[self.name] = _running.get(self.name, 0) + 1
        if self.mark:
            open(self.mark, "w").close()
        return self

    def __exit__(self, *exc):
        global _in_flight
        with _lock:
            _in_flight -= 1
            if self.name:
                _running[self.name] -= 1
                if not _running[self.name]:
                    del _running[self.name]


def route_sleep(environ, start_response):
    """Sleep ?ms= (default 50) milliseconds, counted as in flight."""
    ms = float(_query(environ).get("ms", "50"))
    with _Tracked(environ):
        time.sleep(ms / 1000.0)
    return _respond(start_response, str(os.getpid()))


def route_state(environ, start_response):
    with _lock:
        state = {
            "pid": os.getpid(),
            "in_flight": _in_flight,
            "peak": _peak,
            "threads_seen": len(_threads_seen),
            "running": dict(_running),
        }
    return _json(start_response, state)


def route_environ(environ, start_response):
    """What the tests check about a request's environ: the wsgi.* flags and
    the request's own values (a request must never see another's)."""
    with _Tracked(environ):
        body = {
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "run_once": environ["wsgi.run_once"],
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ.get("QUERY_STRING", ""),
            "token": environ.get("HTTP_X_TOKEN"),
        }
    return _json(start_response, body)


def route_echo(environ, start_response):
    """The request body back, with the request's path and token in headers."""
    with _Tracked(environ):
        body = environ["wsgi.input"].read()
    headers = [
        ("X-Path", environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", "")),
        ("X-Token", environ.get("HTTP_X_TOKEN", "-")),
        ("X-Length", str(len(body))),
    ]
    return _respond(start_response, body, content_type="application/octet-stream", headers=headers)


def stuck_in_app_code(seconds):
    """Where a stuck request sits: the name the faulthandler dump shows."""
    time.sleep(seconds)


def route_stuck(environ, start_response):
    """One long sleep (?s=, default 60) in application code."""
    seconds = float(_query(environ).get("s", "60"))
    with _Tracked(environ):
        stuck_in_app_code(seconds)
    return _respond(start_response, "woke up")


def route_hello(environ, start_response):
    return _respond(start_response, "hello %d\n" % os.getpid())


ROUTES = {
    "/sleep": route_sleep,
    "/state": route_state,
    "/environ": route_environ,
    "/echo": route_echo,
    "/stuck": route_stuck,
    "/hello": route_hello,
}


def app(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    for prefix, handler in ROUTES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return handler(environ, start_response)
    if path == "/":
        return _respond(start_response, "ok\n")
    return _respond(start_response, "not found: %s\n" % path, status="404 Not Found")

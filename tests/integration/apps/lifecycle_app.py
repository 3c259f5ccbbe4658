"""An app that does what real apps do around a worker's life: installs its
own SIGTERM handler at import (LIFECYCLE_TERM=chain|exit|alone), forks in
a request, writes to a module-level buffered file, starts non-daemon
threads. It leaves marker files in LIFECYCLE_DIR for the tests to read."""

import os
import signal
import sys
import threading
import time
from urllib.parse import parse_qs

MARKS = os.environ.get("LIFECYCLE_DIR", "/tmp")
_previous = signal.getsignal(signal.SIGTERM)


def _mark(name, text):
    with open(os.path.join(MARKS, "%s-%d" % (name, os.getpid())), "w") as f:
        f.write(text)


def _chain(signum, frame):
    _mark("term", repr(_previous))
    if callable(_previous):
        _previous(signum, frame)


def _exit(signum, frame):
    _mark("term", repr(_previous))
    sys.exit(0)


def _alone(signum, frame):
    _mark("term", repr(_previous))


_HANDLERS = {"chain": _chain, "exit": _exit, "alone": _alone}
if os.environ.get("LIFECYCLE_TERM") in _HANDLERS:
    signal.signal(signal.SIGTERM, _HANDLERS[os.environ["LIFECYCLE_TERM"]])

# Written by requests, never flushed by the app: only a real interpreter
# exit (which closes module-level files) puts it on disk.
_journal = open(os.path.join(MARKS, "journal-%d" % os.getpid()), "w", buffering=1 << 20)


def _late_write(delay):
    time.sleep(delay)
    _mark("thread", "done after %.1f s" % delay)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        time.sleep(float(query.get("s", "1")))
        body = "slept %d" % os.getpid()
    elif path == "/fork":
        # A bug, but a common one: the child is not told to exit.
        child = os.fork()
        body = "parent %d" % os.getpid() if child else "child %d" % os.getpid()
    elif path == "/die":
        # A query of death: the request takes its worker down.
        os._exit(1)
    elif path == "/journal":
        _journal.write("written by a request in %d\n" % os.getpid())
        body = "noted"
    elif path == "/thread":
        threading.Thread(target=_late_write, args=(float(query.get("s", "1")),)).start()
        body = "started"
    else:
        body = "pid %d" % os.getpid()
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]

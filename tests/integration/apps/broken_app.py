"""An application module that fails at import time.

The master must report the traceback once and exit non-zero instead of
forking workers that die over and over.
"""

raise RuntimeError("broken_app import failure marker")


def app(environ, start_response):  # pragma: no cover - never reached
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable"]

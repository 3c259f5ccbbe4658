"""WSGI applications for the benchmark (bench/bench.py).

Every server runs exactly these callables, imported as `apps:NAME`
(the driver puts bench/ on the path), so the Python work per request is the
same everywhere.

- hello:   13 bytes, explicit Content-Length (as the peers' own benchmarks do)
- big:     64 KiB body, explicit Content-Length
- echo:    reads wsgi.input fully (CONTENT_LENGTH bytes) and returns it
- stream:  generator of 8 chunks of 1 KiB, no Content-Length (chunked on
           HTTP/1.1, or whatever the server does for an unsized body)
- sleep10: time.sleep(0.01), then hello (I/O-bound: the GIL is released)
- flask_app: Flask "Hello, World!" on / (servers load it as flask_hello:app,
             see flask_hello.py)
"""

import time

HELLO = b"Hello, World!"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]


def hello(environ, start_response):
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


BIG = b"x" * (64 * 1024)
BIG_HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))]


def big(environ, start_response):
    start_response("200 OK", BIG_HEADERS)
    return [BIG]


def echo(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    body = stream.read(length) if length > 0 else b""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


CHUNK = b"y" * 1024
STREAM_CHUNKS = 8


def _chunks():
    for _ in range(STREAM_CHUNKS):
        yield CHUNK


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _chunks()


def sleep10(environ, start_response):
    time.sleep(0.01)
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


def make_flask_app():
    from flask import Flask

    app = Flask("bench")

    @app.route("/")
    def index():
        return "Hello, World!"

    return app


def __getattr__(name):
    # flask_app is built on first access (PEP 562), so the servers running
    # the bare apps do not import Flask and their RSS is not inflated by it.
    if name == "flask_app":
        app = make_flask_app()
        globals()["flask_app"] = app
        return app
    raise AttributeError("module %r has no attribute %r" % (__name__, name))

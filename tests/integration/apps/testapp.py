"""Multi-route WSGI test application for the rwsgi integration suite.

Served as `testapp:app` (plus `testapp:validated_app` and the factory
`testapp:make_app(...)`). Only the standard library is used. Routes are
dispatched on PATH_INFO; see ROUTES at the bottom.
"""

import hashlib
import io
import json
import os
import sys
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

STREAM_CHUNK = 64 * 1024


# ---------------------------------------------------------------------------
# helpers shared with the tests (they import this module to compute expected
# values)


def stream_block(index, size=STREAM_CHUNK):
    """Deterministic content for chunk number `index` of /stream."""
    seed = hashlib.sha256(b"rwsgi-stream-%d" % index).digest()
    return (seed * (size // len(seed) + 1))[:size]


def consume_input(kind, stream):
    """Read a request body with one wsgi.input access pattern; returns the
    list of bytes objects the calls returned (the tests run the same function
    over io.BytesIO for the expected value)."""
    out = []
    guard = 100000  # a broken stream that never reaches EOF must not hang a worker
    if kind == "read":
        out.append(stream.read())
    elif kind == "read_n":
        while guard:
            guard -= 1
            piece = stream.read(7)
            if not piece:
                break
            out.append(piece)
    elif kind == "readline":
        while guard:
            guard -= 1
            line = stream.readline()
            if not line:
                break
            out.append(line)
    elif kind == "readline_n":
        while guard:
            guard -= 1
            line = stream.readline(5)
            if not line:
                break
            out.append(line)
    elif kind == "readlines":
        out.extend(stream.readlines())
    elif kind == "iter":
        for line in stream:
            out.append(line)
            guard -= 1
            if not guard:
                break
    elif kind == "mixed":
        out.append(stream.read(3))
        out.append(stream.readline())
        out.append(stream.read(4))
        out.append(stream.readline(2))
        out.append(stream.read())
        out.append(stream.read())  # at EOF: b""
    else:
        raise ValueError("unknown input kind %r" % kind)
    return out


# ---------------------------------------------------------------------------
# small response helpers


def _query(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _respond(start_response, body, status="200 OK", content_type="text/plain", headers=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body)))] + list(headers),
    )
    return [body]


def _json(start_response, obj, status="200 OK"):
    return _respond(start_response, json.dumps(obj, sort_keys=True), status, "application/json")


def _describe(value):
    """JSON description of one environ value."""
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, tuple):
        return {"type": "tuple", "value": [_describe(v) for v in value]}
    attrs = [a for a in ("read", "readline", "readlines", "__iter__", "write", "writelines", "flush") if hasattr(value, a)]
    return {"type": type(value).__name__, "attrs": attrs, "callable": callable(value)}


# ---------------------------------------------------------------------------
# routes


def route_root(environ, start_response):
    return _respond(start_response, "ok\n")


def route_hello(environ, start_response):
    # A one-item list: the server must add Content-Length itself.
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!\n"]


def route_pid(environ, start_response):
    delay = float(_query(environ).get("sleep", "0"))
    if delay:
        time.sleep(min(delay, 5.0))
    return _respond(start_response, str(os.getpid()))


def route_path(environ, start_response):
    return _respond(start_response, "%s?%s" % (environ["PATH_INFO"], environ.get("QUERY_STRING", "")))


def route_environ(environ, start_response):
    return _json(start_response, {key: _describe(value) for key, value in environ.items()})


def route_getenv(environ, start_response):
    key = _query(environ).get("key", "")
    return _json(start_response, {"key": key, "value": os.environ.get(key)})


def route_input(environ, start_response):
    kind = environ["PATH_INFO"].rsplit("/", 1)[-1]
    pieces = consume_input(kind, environ["wsgi.input"])
    return _json(
        start_response,
        {
            "kind": kind,
            "pieces": [p.decode("latin-1") for p in pieces],
            "types": sorted({type(p).__name__ for p in pieces}),
        },
    )


def route_echo(environ, start_response):
    body = environ["wsgi.input"].read()
    ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
    return _respond(start_response, body, content_type=ctype)


def route_upload(environ, start_response):
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    length = 0
    while True:
        piece = stream.read(65536)
        if not piece:
            break
        digest.update(piece)
        length += len(piece)
    return _json(start_response, {"sha256": digest.hexdigest(), "length": length})


def route_chunked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"chunk-1;"
        yield b"chunk-2;"
        yield b""  # empty items must not end a chunked body early
        yield b"chunk-3"

    return generate()


def route_stream(environ, start_response):
    q = _query(environ)
    total = int(q.get("total", str(10 * 1024 * 1024)))
    chunk = int(q.get("chunk", str(STREAM_CHUNK)))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return stream_pieces(total, chunk)


def route_slowstream(environ, start_response):
    """?pieces=N&delay=S: N short lines, S seconds apart (chunked)."""
    q = _query(environ)
    pieces, delay = int(q.get("pieces", "5")), float(q.get("delay", "0.1"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def lines():
        for i in range(pieces):
            if i:
                time.sleep(delay)
            yield b"piece %d\n" % i

    return lines()


def stream_pieces(total, chunk=STREAM_CHUNK):
    """The pieces /stream?total=&chunk= sends, in order."""
    for index, start in enumerate(range(0, total, chunk)):
        yield stream_block(index, min(chunk, total - start))


def stream_sha256(total, chunk=STREAM_CHUNK):
    """The sha256 hex digest of what /stream?total=&chunk= sends."""
    digest = hashlib.sha256()
    for piece in stream_pieces(total, chunk):
        digest.update(piece)
    return digest.hexdigest()


def route_status(environ, start_response):
    code = int(environ["PATH_INFO"].rsplit("/", 1)[-1])
    reasons = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found", 418: "I'm a teapot"}
    headers = [("X-Status", str(code))]
    if code not in (204, 304):
        body = b"status %d\n" % code
        headers += [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        start_response("%d %s" % (code, reasons.get(code, "Whatever")), headers)
        return [body]
    start_response("%d %s" % (code, reasons[code]), headers)
    return []


def route_file(environ, start_response):
    q = _query(environ)
    path = q["path"]
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(os.path.getsize(path))))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](open(path, "rb"), 8192)


class CountedFile(io.FileIO):
    """A real file whose read() calls are counted (sendfile never calls it)."""

    reads = 0

    def read(self, size=-1):
        CountedFile.reads += 1
        return super().read(size)


def route_countedfile(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](CountedFile(_query(environ)["path"], "rb"), 8192)


def route_reads(environ, start_response):
    return _respond(start_response, str(CountedFile.reads))


def route_print(environ, start_response):
    text = _query(environ).get("text", "printed")
    print(text + " on stdout", flush=True)
    print(text + " on stderr", file=sys.stderr, flush=True)
    return _respond(start_response, "ok")


def route_filelike(environ, start_response):
    # file_wrapper over an object that is not a real file: must still work.
    size = int(_query(environ).get("size", "100000"))
    data = b"".join(stream_block(i, 1000) for i in range(size // 1000 + 1))[:size]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(data), 4096)


def route_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"part1;")
    write(b"part2;")
    return [b"part3"]


def route_excinfo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("replaced before any byte was sent")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("X-Second", "yes")], sys.exc_info())
    return [b"recovered"]


def route_double_start(environ, start_response):
    # Calling start_response twice without exc_info is an error (PEP 3333).
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"should not be sent"]


class ClosingBody:
    """A response iterable that records its close() call in $CLOSE_LOG."""

    def __init__(self, rid, mode):
        self.rid = rid
        self.mode = mode
        self.count = 0
        self.exhausted = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.mode == "normal":
            if self.count >= 2:
                self.exhausted = True
                raise StopIteration
            self.count += 1
            return b"item-%d;" % self.count
        if self.mode == "error_first":
            raise RuntimeError("close-test error before the first item")
        if self.mode == "error_later":
            if self.count >= 1:
                raise RuntimeError("close-test error after the first item")
            self.count += 1
            return b"first-item;"
        if self.mode == "disconnect":
            # Up to 2000 x 64 KiB, slowly: a client that went away must be noticed.
            if self.count >= 2000:
                self.exhausted = True
                raise StopIteration
            self.count += 1
            time.sleep(0.005)
            return stream_block(self.count, STREAM_CHUNK)
        raise ValueError(self.mode)

    def close(self):
        with open(os.environ["CLOSE_LOG"], "a") as f:
            f.write("%s %s count=%d exhausted=%s\n" % (self.rid, self.mode, self.count, self.exhausted))


def route_close(environ, start_response):
    mode = environ["PATH_INFO"].rsplit("/", 1)[-1]
    rid = _query(environ).get("id", "-")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingBody(rid, mode)


def route_crash(environ, start_response):
    marker = _query(environ).get("marker", "crash")
    raise RuntimeError("deliberate test failure %s" % marker)


def route_badheader(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\r\nInjected: yes")])
    return [b"must not be sent"]


def route_hopbyhop(environ, start_response):
    body = b"hop-by-hop\n"
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Custom", "kept"),
            ("Keep-Alive", "timeout=999"),
            ("Proxy-Authenticate", "Basic realm=x"),
            ("Upgrade", "h2c"),
        ],
    )
    return [body]


def route_groups(environ, start_response):
    return _json(start_response, {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups())})


def route_log(environ, start_response):
    """Log ?msg= through Python's logging, as an application does."""
    import logging

    logging.getLogger("testapp").info("%s", _query(environ).get("msg", ""))
    return _respond(start_response, "logged\n")


ROUTES = [
    ("/hello", route_hello),
    ("/groups", route_groups),
    ("/log", route_log),
    ("/pid", route_pid),
    ("/path", route_path),
    ("/environ", route_environ),
    ("/getenv", route_getenv),
    ("/input/", route_input),
    ("/echo", route_echo),
    ("/upload", route_upload),
    ("/chunked", route_chunked),
    ("/stream", route_stream),
    ("/slowstream", route_slowstream),
    ("/status/", route_status),
    ("/filelike", route_filelike),
    ("/countedfile", route_countedfile),
    ("/reads", route_reads),
    ("/print", route_print),
    ("/file", route_file),
    ("/write", route_write),
    ("/excinfo", route_excinfo),
    ("/double_start", route_double_start),
    ("/close/", route_close),
    ("/crash", route_crash),
    ("/badheader", route_badheader),
    ("/hopbyhop", route_hopbyhop),
]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    if path == "/":
        return route_root(environ, start_response)
    for prefix, handler in ROUTES:
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return handler(environ, start_response)
    return _respond(start_response, "not found: %s\n" % path, status="404 Not Found")


# ---------------------------------------------------------------------------
# wsgiref.validate wrapped app: any PEP 3333 violation it detects (including
# its warnings, turned into errors here) raises, which the server turns into 500.


def _simple_app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    if method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = stream.read(max(0, length - len(first)))
        body = b"posted:" + first + rest
    else:
        body = ("validated %s %s" % (method, environ.get("PATH_INFO", ""))).encode("latin-1")
    environ["wsgi.errors"].write("")
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


_validated = validator(_simple_app)


def validated_app(environ, start_response):
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        return _validated(environ, start_response)


# ---------------------------------------------------------------------------
# factory used to test the `module:factory(args)` APP syntax


def make_app(*args, **kwargs):
    def factory_app(environ, start_response):
        return _json(start_response, {"args": list(args), "kwargs": kwargs})

    return factory_app


# ---------------------------------------------------------------------------
# an app that keeps every environ (and so its wsgi.input) alive forever

KEPT_ENVIRONS = []


def keep_environ_app(environ, start_response):
    KEPT_ENVIRONS.append(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"kept"]


def paste_factory(global_conf, **local_conf):
    """A PasteDeploy app factory (`use = call:testapp:paste_factory`): the
    app shows the configuration it was made with, and logs each request to
    the `testapp.paste` logger."""
    import logging

    def paste_app(environ, start_response):
        logging.getLogger("testapp.paste").info("served %s", environ.get("PATH_INFO"))
        return _json(start_response, {"global_conf": global_conf, "local_conf": local_conf})

    return paste_app

"""Routes for PEP 3333 edge cases: native strings as latin-1, response
header checks, Expect: 100-continue after the response started."""

import json

LEAKED = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/latin1-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", "caf\u00e9")])
        return [b"ok"]
    if path == "/non-latin1-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", "\u2713")])
        return [b"ok"]
    if path == "/two-lengths":
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "10")])
        return [b"ok"]
    if path == "/plus-length":
        start_response("200 OK", [("Content-Length", "+2")])
        return [b"ok"]
    if path == "/own-server":
        start_response("200 OK", [("Server", "mine"), ("Content-Type", "text/plain")])
        return [b"ok"]
    if path == "/write-then-read":
        # The head goes out with the first write(); reading the body after
        # that must not put an interim 100 Continue into the response.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first;")
        body = environ["wsgi.input"].read()
        return [b"got %d" % len(body)]
    if path == "/sleep":
        import time
        time.sleep(float(environ.get("QUERY_STRING") or 1))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/leak":
        # 16 MiB kept for good on every request: a leaking app.
        LEAKED.append(bytearray(16 << 20))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"leaked %d" % len(LEAKED)]
    if path == "/forwarded-for":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ.get("HTTP_X_FORWARDED_FOR", "-").encode()]
    if path == "/scheme":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.url_scheme"].encode()]
    if path == "/ids":
        import os
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}).encode()]
    if path == "/slowstream":
        # 15 chunks, one every 0.2 s: steady progress, 3 s in all.
        import time

        def chunks():
            for i in range(15):
                time.sleep(0.2)
                yield b"%d;" % i

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    if path == "/write-in-close":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        return WritesInClose(write)
    if path == "/exit4":
        # Status 4 is what a worker that cannot load the app exits with; a
        # serving worker that exits with it is just a worker that exited.
        import os
        os._exit(4)
    keys = ("PATH_INFO", "SCRIPT_NAME", "QUERY_STRING", "RAW_URI", "CONTENT_LENGTH")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({k: environ.get(k) for k in keys}).encode()]


class WritesInClose:
    """An iterable whose close() calls write(): too late, the body is over."""

    def __init__(self, write):
        self.write = write

    def __iter__(self):
        yield b"body"

    def close(self):
        try:
            self.write(b"LATE")
        except OSError:
            pass

"""Reads the request body the way real apps do (read(n) in a loop,
readline(), iteration) and answers with its length and sha256: for the
bounded-memory upload tests. /read8k, /read64k, /readline, /iter."""

import hashlib
import json


def _pieces(style, stream):
    if style == "read8k":
        return iter(lambda: stream.read(8192), b"")
    if style == "read64k":
        return iter(lambda: stream.read(65536), b"")
    if style == "readline":
        return iter(stream.readline, b"")
    if style == "iter":
        return stream
    raise ValueError(style)


def app(environ, start_response):
    style = environ["PATH_INFO"].strip("/") or "read64k"
    digest, length = hashlib.sha256(), 0
    for piece in _pieces(style, environ["wsgi.input"]):
        digest.update(piece)
        length += len(piece)
    body = json.dumps({"length": length, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

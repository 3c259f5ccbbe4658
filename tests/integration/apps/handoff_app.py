"""The app of the hand-off tests: /slow?SECONDS sleeps, /hang sleeps for
good, /pid answers the worker's pid and the query (so a client sees which
worker served it, and in what order), /echo answers the body, /remote the
client's address."""

import os
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/slow":
        time.sleep(float(query or 1))
    elif path == "/hang":
        time.sleep(3600)
    if path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/remote":
        body = environ["REMOTE_ADDR"].encode()
    else:
        body = ("%d %s" % (os.getpid(), query)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

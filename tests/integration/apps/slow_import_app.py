"""An app whose import takes 5 s (for --boot-timeout)."""

import time

time.sleep(5)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"booted"]

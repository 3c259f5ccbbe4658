"""An app whose import crashes the worker (a segfault in an extension, say)."""

import ctypes

ctypes.string_at(0)  # reads address 0: SIGSEGV


def app(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]

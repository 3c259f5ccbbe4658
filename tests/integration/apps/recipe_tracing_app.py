"""The app side of the OpenTelemetry recipe (test_hook_recipes.py): one
span per request through the global tracer provider, which the config's
post_fork hook sets up in each worker. /pid says which worker answered."""

import os

from opentelemetry import trace

# A proxy until post_fork's provider is set; it follows the global one.
tracer = trace.get_tracer(__name__)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    with tracer.start_as_current_span("request") as span:
        span.set_attribute("http.target", path)
        body = str(os.getpid()).encode() if path == "/pid" else b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

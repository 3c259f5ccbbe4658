"""The OpenTelemetry SDK set up in post_fork, the usual recipe for
pre-fork servers: a BatchSpanProcessor's export thread does not survive
a fork, so each worker makes its own provider after it. Spans go to
$SPAN_FILE as JSON lines, one per span, written by the worker that made
them. Used by test_hook_recipes.py with rwsgi and with Gunicorn."""

import json
import os

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Appends one JSON line per span to a file shared by the workers."""

    def __init__(self, path):
        self.path = path

    def export(self, spans):
        lines = "".join(
            json.dumps({
                "name": span.name,
                "pid": os.getpid(),
                "worker_age": span.resource.attributes.get("worker.age"),
                "target": span.attributes.get("http.target"),
            }) + "\n"
            for span in spans
        )
        # One write per batch, in append mode: the workers' lines do not mix.
        with open(self.path, "a") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def post_fork(server, worker):
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # shutdown_on_exit (the default) flushes the batch from atexit at the
    # worker's exit: spans still queued then are not lost.
    provider = TracerProvider(resource=Resource.create({"service.name": "recipe", "worker.age": worker.age}))
    provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(os.environ["SPAN_FILE"])))
    trace.set_tracer_provider(provider)

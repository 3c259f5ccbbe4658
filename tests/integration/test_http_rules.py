"""HTTP rules where a Gunicorn config must mean the same under rwsgi: the
same raw requests go to rwsgi and to Gunicorn (27, sync worker, started
with the same flags) and must get the same status. Each request also goes
to rwsgi byte by byte. Rules where rwsgi is deliberately stricter than
Gunicorn are tested on rwsgi alone, at the end."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import APPS_DIR, exchange, free_port, http_probe, run_cli, wait_for

LIMITS = ["--limit-request-line", "200", "--limit-request-fields", "10", "--limit-request-field_size", "500"]


def head(*lines, body=b""):
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def field(total):
    """A header field line of `total` bytes, its CRLF counted (Gunicorn's way)."""
    return b"X-Pad: " + b"v" * (total - 9)


def request_line(total):
    return b"GET /" + b"a" * (total - 14) + b" HTTP/1.1"


CHUNKED = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close"

# (name, request, status both must answer)
SAME_AS_GUNICORN = [
    ("a plain request", head(b"GET /hello HTTP/1.1", b"Host: x", b"Connection: close"), 200),
    ("two Content-Type fields", head(b"POST /echo HTTP/1.1", b"Host: x", b"Content-Type: a", b"Content-Type: b"), 400),
    ("two equal Content-Type fields", head(b"POST /echo HTTP/1.1", b"Host: x", b"Content-Type: a", b"Content-Type: a"), 400),
    ("two Host fields", head(b"GET / HTTP/1.1", b"Host: x", b"Host: x"), 400),
    ("Content-Length as a list", head(b"POST /echo HTTP/1.1", b"Host: x", b"Content-Length: 2, 2", body=b"ok"), 400),
    ("two equal Content-Length fields",
     head(b"POST /echo HTTP/1.1", b"Host: x", b"Content-Length: 2", b"Content-Length: 2", body=b"ok"), 400),
    ("a lowercase method", head(b"get /hello HTTP/1.1", b"Host: x"), 400),
    ("a mixed-case method", head(b"Get /hello HTTP/1.1", b"Host: x"), 400),
    ("a two-letter method", head(b"GO /hello HTTP/1.1", b"Host: x"), 400),
    ("a method with #", head(b"G#T /hello HTTP/1.1", b"Host: x"), 400),
    ("a field at the size limit", head(b"GET /hello HTTP/1.1", b"Host: x", field(500), b"Connection: close"), 200),
    ("a field one byte over", head(b"GET /hello HTTP/1.1", b"Host: x", field(501)), 431),
    ("a request line at the limit", head(request_line(200), b"Host: x", b"Connection: close"), 404),
    ("a request line one byte over", head(request_line(201), b"Host: x"), 414),
    ("a Content-Type trailer", CHUNKED + b"\r\n\r\n2\r\nok\r\n0\r\nContent-Type: text/x\r\n\r\n", 200),
    ("an Authorization trailer", CHUNKED + b"\r\n\r\n2\r\nok\r\n0\r\nAuthorization: Basic eDp5\r\n\r\n", 400),
    ("a Host trailer", CHUNKED + b"\r\n\r\n2\r\nok\r\n0\r\nHost: evil\r\n\r\n", 400),
]


def status_of(reply):
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match, reply[:200]
    return int(match.group(1))


@pytest.fixture(scope="module")
def rwsgi_server(module_servers):
    return module_servers.start(LIMITS + ["testapp:app"])


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    port = free_port()
    gunicorn = Path(sys.prefix) / "bin" / "gunicorn"
    log = open(tmp_path_factory.mktemp("gunicorn") / "log", "wb")
    proc = subprocess.Popen(
        [str(gunicorn), "-w", "1", "-k", "sync", "-b", "127.0.0.1:%d" % port, "--chdir", str(APPS_DIR)] + LIMITS
        + ["testapp:app"],
        stdout=log, stderr=log, start_new_session=True,
    )
    try:
        wait_for(lambda: http_probe(("127.0.0.1", port)), 20, message="gunicorn to answer")
        yield ("127.0.0.1", port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()


@pytest.mark.parametrize("name,raw,status", SAME_AS_GUNICORN, ids=[c[0] for c in SAME_AS_GUNICORN])
def test_rwsgi_answers_as_gunicorn_does(rwsgi_server, gunicorn_server, name, raw, status):
    address = (rwsgi_server.host, rwsgi_server.port)
    assert status_of(exchange(gunicorn_server, raw)) == status, "Gunicorn"
    assert status_of(exchange(address, raw)) == status, "rwsgi, whole"
    assert status_of(exchange(address, raw, piece=1)) == status, "rwsgi, byte by byte"


def test_a_trailer_that_is_dropped_never_reaches_the_environ(rwsgi_server):
    raw = (b"POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"2\r\nok\r\n0\r\nContent-Type: text/x\r\nX-Late: 1\r\n\r\n")
    reply = exchange((rwsgi_server.host, rwsgi_server.port), raw)
    assert status_of(reply) == 200
    assert b"text/x" not in reply and b"HTTP_X_LATE" not in reply, reply


# -- where rwsgi is stricter than Gunicorn, or its own ----------------------------


def test_two_authorization_fields_are_refused(rwsgi_server):
    """Gunicorn passes on both; rwsgi refuses, as for every field that may
    appear once and that an app acts on (two parsers could keep either)."""
    raw = head(b"GET /hello HTTP/1.1", b"Host: x", b"Authorization: Basic eDp5", b"Authorization: Basic ejp3")
    assert status_of(exchange((rwsgi_server.host, rwsgi_server.port), raw)) == 400


def test_unconventional_methods_can_be_permitted(servers):
    srv = servers.start(["--permit-unconventional-http-method", "testapp:app"])
    reply = exchange((srv.host, srv.port), head(b"get /environ HTTP/1.1", b"Host: x", b"Connection: close"))
    assert status_of(reply) == 200, reply[:200]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["REQUEST_METHOD"]["value"] == "get"


def test_limits_over_gunicorns_maxima_are_clamped_with_a_warning(servers):
    """A Gunicorn config with limits over the maxima starts (Gunicorn clamps
    them silently); rwsgi says so once in the log."""
    srv = servers.start(["--limit-request-line", "9000", "--limit-request-fields", "40000",
                         "--limit-request-field_size", "2000000", "testapp:app"])
    log = srv.stderr()
    assert "limit_request_line: 9000 is over the maximum, 8190; using 8190" in log, log
    assert "limit_request_fields: 40000 is over the maximum, 32768; using 32768" in log, log
    assert "limit_request_field_size: 2000000 is over the maximum, 1048576; using 1048576" in log, log
    address = (srv.host, srv.port)
    assert status_of(exchange(address, head(request_line(8190), b"Host: x", b"Connection: close"))) == 404
    assert status_of(exchange(address, head(request_line(8191), b"Host: x"))) == 414


def test_a_field_size_of_0_means_gunicorns_8190(servers):
    srv = servers.start(["--limit-request-field_size", "0", "testapp:app"])
    address = (srv.host, srv.port)
    assert status_of(exchange(address, head(b"GET /hello HTTP/1.1", b"Host: x", field(8190), b"Connection: close"))) == 200
    assert status_of(exchange(address, head(b"GET /hello HTTP/1.1", b"Host: x", field(8191)))) == 431


def test_print_config_keeps_the_values_given():
    result = run_cli(["--limit-request-line", "9000", "--print-config", "testapp:app"])
    assert result.returncode == 0, result.stderr
    assert "limit_request_line = 9000" in result.stdout


def test_casefold_http_method_as_in_gunicorn(servers, tmp_path):
    args = ["--permit-unconventional-http-method", "--casefold-http-method"]
    srv = servers.start(args + ["testapp:app"])
    reply = exchange((srv.host, srv.port), head(b"get /environ HTTP/1.1", b"Host: x", b"Connection: close"))
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["REQUEST_METHOD"]["value"] == "GET"


def test_gunicorn_options_rwsgi_cannot_honour_are_said_or_refused():
    ok = run_cli(["--http-parser", "fast", "--permit-unconventional-http-version", "--check-config", "testapp:app"])
    assert ok.returncode == 0, ok.stderr
    assert "http_parser: no effect" in ok.stderr and "permit_unconventional_http_version: no effect" in ok.stderr
    refused = run_cli(["--logger-class", "myapp.MyLogger", "testapp:app"])
    assert refused.returncode == 1 and "logger_class: rwsgi cannot use 'myapp.MyLogger'" in refused.stderr
    assert run_cli(["--logger-class", "gunicorn.glogging.Logger", "--check-config", "testapp:app"]).returncode == 0

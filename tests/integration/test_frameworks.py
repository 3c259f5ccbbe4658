"""Real frameworks: the Flask and Django examples, through `requests`."""

import hashlib
import json
import os
import socket

import pytest
import requests

from support import DJANGO_DIR, EXAMPLES_DIR, runner_venv_prefix
from test_uploads import GROWTH_BOUND, MIB, UPLOAD, body_blocks, expected, read_reply, reset_peak, status_kib


def venv_args():
    # Flask and Django live in the virtualenv that runs pytest; the embedded
    # interpreter is told about it the way a user would.
    prefix = runner_venv_prefix()
    return ["--virtualenv", prefix] if prefix else []


@pytest.fixture(scope="module")
def flask_server(module_servers):
    return module_servers.start(venv_args() + ["flask_app:app"], chdir=EXAMPLES_DIR)


@pytest.fixture(scope="module")
def flask_factory_server(module_servers):
    return module_servers.start(venv_args() + ["flask_app:create_app()"], chdir=EXAMPLES_DIR)


@pytest.fixture(scope="module")
def django_server(module_servers):
    return module_servers.start(venv_args() + ["myproject.wsgi:application"], chdir=DJANGO_DIR)


@pytest.fixture(params=["app", "factory"])
def any_flask(request, flask_server, flask_factory_server):
    return flask_server if request.param == "app" else flask_factory_server


def test_flask_index(any_flask):
    resp = requests.get(any_flask.url("/"), timeout=10)
    assert resp.status_code == 200
    assert resp.text == "Hello from Flask!"
    assert resp.headers["Server"].lower().startswith("rwsgi")


def test_flask_json(any_flask):
    resp = requests.get(any_flask.url("/json?name=rwsgi"), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    data = resp.json()
    assert data["message"] == "Hello from Flask!"
    assert data["framework"] == "flask"
    assert data["args"] == {"name": "rwsgi"}


def test_flask_echo(any_flask):
    body = "Grüße from the test suite\n".encode("utf-8") * 50
    resp = requests.post(any_flask.url("/echo"), data=body, headers={"Content-Type": "text/plain"}, timeout=10)
    assert resp.status_code == 200
    assert resp.content == body


def test_flask_upload(flask_server):
    payload = os.urandom(1024 * 1024)
    resp = requests.post(flask_server.url("/upload"), data=payload, timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


def test_flask_chunked_upload(flask_server):
    payload = os.urandom(300 * 1024)

    def pieces():
        for i in range(0, len(payload), 32768):
            yield payload[i : i + 32768]

    resp = requests.post(flask_server.url("/upload"), data=pieces(), timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "length": len(payload)}


def multipart_upload(srv, path, total):
    """POST a `total`-byte file as multipart/form-data, streamed from the
    client; the JSON answer and the worker's peak RSS growth in bytes."""
    worker = srv.booted_pids()[-1]
    idle = status_kib(worker, "VmRSS")
    reset_peak(worker)
    boundary = "rwsgi-test-boundary"
    pre = (
        '--%s\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n" % boundary
    ).encode()
    post = ("\r\n--%s--\r\n" % boundary).encode()
    head = (
        "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
        "Content-Length: %d\r\nConnection: close\r\n\r\n" % (path, boundary, len(pre) + total + len(post))
    )
    with socket.create_connection((srv.host, srv.port), timeout=120) as s:
        s.sendall(head.encode() + pre)
        for b in body_blocks(total):
            s.sendall(b)
        s.sendall(post)
        answer = json.loads(read_reply(s)[1])
    return answer, (status_kib(worker, "VmHWM") - idle) * 1024


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_a_multipart_file_upload_streams_in_bounded_memory(framework, flask_server, django_server):
    """The framework's own file-upload handling (Werkzeug's, Django's)
    spools a large file to disk as rwsgi streams the body in: the worker's
    memory does not grow with the file."""
    srv = flask_server if framework == "flask" else django_server
    answer, growth = multipart_upload(srv, "/files", UPLOAD)
    assert answer == dict(expected(UPLOAD), filename="big.bin")
    print("%s multipart: peak RSS +%.1f MiB for a %d MiB file" % (framework, growth / MIB, UPLOAD // MIB))
    assert growth < 2 * GROWTH_BOUND, "peak RSS grew by %.0f MiB" % (growth / MIB)


def test_flask_not_found_and_session_reuse(flask_server):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(flask_server.url("/"), timeout=10).text == "Hello from Flask!"
            assert session.get(flask_server.url("/missing"), timeout=10).status_code == 404
            assert session.post(flask_server.url("/"), timeout=10).status_code == 405


def test_django_index(django_server):
    resp = requests.get(django_server.url("/"), timeout=10)
    assert resp.status_code == 200
    assert resp.text == "Hello from Django!"


def test_django_echo(django_server):
    body = b'{"hello": "django"}' * 100
    resp = requests.post(
        django_server.url("/echo"), data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert resp.status_code == 200
    assert resp.content == body
    assert resp.headers["Content-Type"] == "application/json"


def test_django_errors(django_server):
    assert requests.get(django_server.url("/missing"), timeout=10).status_code == 404
    assert requests.get(django_server.url("/echo"), timeout=10).status_code == 405

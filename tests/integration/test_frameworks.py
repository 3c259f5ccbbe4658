"""Real frameworks: the Flask and Django examples, through `requests`."""

import hashlib
import os

import pytest
import requests

from support import DJANGO_DIR, EXAMPLES_DIR, runner_venv_prefix


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

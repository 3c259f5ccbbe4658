"""Fixtures for the rwsgi integration suite.

Servers are real `rwsgi` processes (binary from $RWSGI_BIN, default
target/debug/rwsgi) on free loopback ports; every test talks to them over real
sockets. Each server's stdout/stderr go to files under pytest's tmp dir.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import support  # noqa: E402


def pytest_report_header(config):
    return "rwsgi binary: %s" % support.rwsgi_bin()


def pytest_sessionstart(session):
    path = support.rwsgi_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.exit(
            "rwsgi binary not found at %s: run `cargo build` or set RWSGI_BIN" % path,
            returncode=2,
        )


@pytest.fixture
def servers(tmp_path):
    """Function-scoped: servers.start([...]) starts rwsgi; all are stopped at teardown."""
    manager = support.ServerManager(tmp_path / "servers")
    yield manager
    manager.stop_all()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory):
    """Module-scoped variant of `servers`, for a server shared by a module."""
    manager = support.ServerManager(tmp_path_factory.mktemp("servers"))
    yield manager
    manager.stop_all()


@pytest.fixture(scope="module")
def close_log(tmp_path_factory):
    """A file the test app appends to from close() (passed with -e CLOSE_LOG=...)."""
    return tmp_path_factory.mktemp("closelog") / "close.log"


@pytest.fixture(scope="module")
def app_server(module_servers, close_log):
    """The multi-route test app (apps/testapp.py) with one worker, shared by a module."""
    return module_servers.start(["-w", "1", "-e", "CLOSE_LOG=%s" % close_log, "testapp:app"])

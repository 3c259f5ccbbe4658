"""Fixtures for the rwsgi integration suite.

Servers are real `rwsgi` processes (binary from $RWSGI_BIN, default
target/debug/rwsgi) on free loopback ports; every test talks to them over real
sockets. Each server's stdout/stderr go to files under pytest's tmp dir.
"""

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import frontends  # noqa: E402
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


@pytest.fixture(scope="module")
def fe(tmp_path_factory):
    """Real nginx and HAProxy processes for a module (tests/integration/frontends.py)."""
    manager = frontends.FrontendManager(tmp_path_factory.mktemp("frontends"))
    yield manager
    manager.stop_all()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate and key for a front end's TLS listener."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (tests/run.sh installs it)")
    return frontends.TLSFiles(tmp_path_factory.mktemp("tls"))


def pytest_sessionfinish(session, exitstatus):
    """Under tests/run.sh as root (RWSGI_NO_SKIPS=1) every tool the suite
    uses has been installed, so a skipped test means something is missing
    that the script should have provided, or a host that lacks something
    (IPv6 on lo, a high enough open-file limit): fail the run rather than
    pass with less tested."""
    if os.environ.get("RWSGI_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            reporter.write_line("skipped under RWSGI_NO_SKIPS=1: %s: %s" % (report.nodeid, reason), red=True)
        session.exitstatus = 1

"""--reload, --reload-engine and --reload-extra-file: the master watches
the files the workers imported (and the extra ones) and reloads as HUP
does, new workers first; a broken edit keeps the old workers serving."""

import os
import time

import pytest

import rawhttp
from support import gunicorn, wait_for
from test_reload import BROKEN_LINE, fetch, write_app

LAZY_APP = '''import os
VERSION = b"lazy-app"

def app(environ, start_response):
    import lazy_part  # imported at the first request, not at boot
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [lazy_part.VERSION + b" " + str(os.getpid()).encode()]
'''


def served(srv_or_address):
    """The version the app answers with (a server, or an address)."""
    if isinstance(srv_or_address, tuple):
        resp = rawhttp.request(srv_or_address, "GET", "/")
        assert resp.status == 200, resp
        return resp.body.split(b" ")[0]
    return fetch(srv_or_address).split(b" ")[0]


def edit(path, text):
    """Write `text` as an editor would, with a later time of change (a
    polling watcher compares them)."""
    path.write_text(text)
    later = time.time() + 1
    os.utime(path, (later, later))


@pytest.mark.parametrize("engine", ["auto", "inotify", "poll"])
def test_an_edit_is_served_and_a_broken_one_keeps_the_old_workers(servers, tmp_path, engine):
    write_app(tmp_path, b"v1")
    srv = servers.start(["-w", "2", "--reload", "--reload-engine", engine, "reload_app:app"], chdir=str(tmp_path))
    assert served(srv) == b"v1"
    # The workers report what they imported once booted: let the master
    # read it (it looks once a second).
    time.sleep(1.5)
    write_app(tmp_path, b"v2")
    wait_for(lambda: served(srv) == b"v2", 15, message="the edited code served")
    before = srv.count_stderr(BROKEN_LINE)
    write_app(tmp_path, b"v3", broken=True)
    srv.wait_new_stderr(BROKEN_LINE, before, timeout=15)
    # The old workers serve on.
    for _ in range(5):
        assert served(srv) == b"v2"
    write_app(tmp_path, b"v4")
    wait_for(lambda: served(srv) == b"v4", 15, message="the fixed code served")
    assert "Reloading: %s changed" % (tmp_path / "reload_app.py") in srv.stderr()


def test_a_module_imported_by_a_request_is_watched_too(servers, tmp_path):
    (tmp_path / "lazy_app.py").write_text(LAZY_APP)
    (tmp_path / "lazy_part.py").write_text('VERSION = b"part-1"\n')
    srv = servers.start(["-w", "1", "--reload", "lazy_app:app"], chdir=str(tmp_path))
    assert served(srv) == b"part-1"
    time.sleep(2.5)  # the worker reports the new import within a second; the master reads it
    (tmp_path / "lazy_part.py").write_text('VERSION = b"part-2"\n')
    wait_for(lambda: served(srv) == b"part-2", 15, message="the edited lazy module served")


def test_extra_files_and_glob_patterns_are_watched(servers, tmp_path):
    write_app(tmp_path, b"v1")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "base.html").write_text("one")
    plain = tmp_path / "settings.ini"
    plain.write_text("a = 1\n")
    srv = servers.start(["-w", "1", "--reload", "--reload-extra-file", str(plain),
                         "--reload-extra-file", str(templates / "**" / "*.html"), "reload_app:app"],
                        chdir=str(tmp_path))
    first = srv.wait_booted(1)
    time.sleep(1.5)

    def reloads():
        return srv.count_stderr(r"Reloading: ")

    edit(plain, "a = 2\n")
    wait_for(lambda: reloads() == 1, 15, message="a reload for the extra file")
    edit(templates / "base.html", "two")
    wait_for(lambda: reloads() == 2, 15, message="a reload for the template")
    # A file the pattern matches only now: watched from now on, and its
    # first edit (not its creation) reloads, as in Gunicorn.
    nested = templates / "pages"
    nested.mkdir()
    (nested / "new.html").write_text("new")
    time.sleep(2.5)
    assert reloads() == 2
    edit(nested / "new.html", "edited")
    wait_for(lambda: reloads() == 3, 15, message="a reload for the new template")
    assert "Reloading: %s changed" % (nested / "new.html") in srv.stderr()
    assert not set(first) & set(srv.booted_pids()[-1:])


def test_relative_extra_files_are_from_the_start_directory(servers, tmp_path):
    """As Gunicorn: relative to where rwsgi starts, not to --chdir."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    write_app(app_dir, b"v1")
    (tmp_path / "extra.txt").write_text("1")
    srv = servers.start(["-w", "1", "--reload", "--reload-extra-file", "extra.txt", "reload_app:app"],
                        chdir=str(app_dir), cwd=str(tmp_path))
    time.sleep(1.5)
    edit(tmp_path / "extra.txt", "2")
    srv.wait_stderr("Reloading: %s changed" % (tmp_path / "extra.txt"), timeout=15)


def test_gunicorn_serves_the_edit_too(tmp_path):
    """The same command line, the same result under Gunicorn (its polling
    engine: inotify needs a package)."""
    write_app(tmp_path, b"v1")
    args = ["-w", "1", "--chdir", str(tmp_path), "--reload", "--reload-engine", "poll", "reload_app:app"]
    with gunicorn(args, tmp_path / "gunicorn.log", cwd=tmp_path) as address:
        assert served(address) == b"v1"
        time.sleep(1.5)
        write_app(tmp_path, b"v2")
        wait_for(lambda: served(address) == b"v2", 15, message="Gunicorn serving the edit")

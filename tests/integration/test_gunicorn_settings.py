"""Gunicorn's settings beyond the flags rwsgi started with: a proxy's
scheme and forwarder headers, spaces before a header's colon, the
workers' groups, PasteDeploy apps, Python's logging configuration,
syslog, --spew, and the settings that only name things. Where Gunicorn
can run the same configuration, both servers get the same requests and
must answer the same."""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from support import REPO_ROOT, exchange, gunicorn, refused_config, run_cli, runner_venv_prefix, wait_for


def get(address, path=b"/environ", headers=()):
    """(status, body) of a GET with extra raw header lines."""
    raw = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raw += b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    reply = exchange(address, raw)
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def environ(address, headers=(), path=b"/environ"):
    """The environ the app saw, key to value; None for a refused request."""
    status, body = get(address, path, headers)
    if status != 200:
        return status
    return {key: described.get("value") for key, described in json.loads(body).items()}


def venv():
    """PasteDeploy lives in the virtualenv that runs pytest (and Gunicorn)."""
    prefix = runner_venv_prefix()
    return ["--virtualenv", prefix] if prefix else []


def both(servers, tmp_path, args):
    """rwsgi and Gunicorn, started with the same `args`: a context manager
    yielding the two addresses."""
    srv = servers.start(venv() + args)
    running = gunicorn(args, tmp_path / "gunicorn.log")

    class Both:
        def __enter__(self):
            return (srv.host, srv.port), running.__enter__()

        def __exit__(self, *exc):
            return running.__exit__(*exc)

    return Both()


# -- what a trusted proxy says -------------------------------------------------


SCHEME_CASES = [
    ("the configured header and value", [b"X-Scheme: secure"], "https"),
    ("the value in another case", [b"X-Scheme: SECURE"], "http"),
    ("another value", [b"X-Scheme: plain"], "http"),
    ("a default header the config replaced", [b"X-Forwarded-Proto: https"], "http"),
    ("both headers, agreeing", [b"X-Scheme: secure", b"X-Other-Scheme: on"], "https"),
    ("both headers, disagreeing", [b"X-Scheme: secure", b"X-Other-Scheme: off"], 400),
]


def test_secure_scheme_headers_from_a_config_file_mean_what_they_mean_in_gunicorn(servers, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("secure_scheme_headers = {'X-SCHEME': 'secure', 'X-OTHER-SCHEME': 'on'}\n")
    with both(servers, tmp_path, ["-c", str(conf), "testapp:app"]) as (rwsgi, gunicorn_address):
        for name, headers, expected in SCHEME_CASES:
            for server, address in (("rwsgi", rwsgi), ("gunicorn", gunicorn_address)):
                env = environ(address, headers)
                got = env if isinstance(env, int) else env["wsgi.url_scheme"]
                assert got == expected, (name, server)


def test_an_empty_table_turns_the_scheme_headers_off(servers, tmp_path):
    conf = tmp_path / "conf.toml"
    conf.write_text("secure_scheme_headers = {}\n")
    srv = servers.start(["-c", str(conf), "testapp:app"])
    address = (srv.host, srv.port)
    assert environ(address, [b"X-Forwarded-Proto: https"])["wsgi.url_scheme"] == "http"
    assert environ(address, [b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off"])["wsgi.url_scheme"] == "http"


def test_a_scheme_header_table_must_hold_strings(tmp_path):
    _, stderr = refused_config(tmp_path, "secure_scheme_headers = {'X-SCHEME': 1}\n")
    assert "secure_scheme_headers: the value of 'X-SCHEME' must be a string" in stderr


FORWARDER_CASES = [
    # (name, extra args, headers, path, expected environ values)
    ("SCRIPT_NAME from a trusted proxy", [], [b"SCRIPT_NAME: /app"], b"/app/environ",
     {"SCRIPT_NAME": "/app", "PATH_INFO": "/environ", "HTTP_SCRIPT_NAME": "/app"}),
    ("SCRIPT_NAME from a peer not trusted", ["--forwarded-allow-ips", "10.9.9.9"], [b"SCRIPT_NAME: /app"],
     b"/environ", {"SCRIPT_NAME": "", "PATH_INFO": "/environ", "HTTP_SCRIPT_NAME": None}),
    ("a header named in --forwarder-headers", ["--forwarder-headers", "X_USER"], [b"X_User: bob", b"X_Other: 1"],
     b"/environ", {"HTTP_X_USER": "bob", "HTTP_X_OTHER": None}),
    ("every header, with '*'", ["--forwarder-headers", "*"], [b"X_Other: 1"], b"/environ", {"HTTP_X_OTHER": "1"}),
]


@pytest.mark.parametrize("name,args,headers,path,expected", FORWARDER_CASES, ids=[c[0] for c in FORWARDER_CASES])
def test_forwarder_headers_as_in_gunicorn(servers, tmp_path, name, args, headers, path, expected):
    with both(servers, tmp_path, args + ["testapp:app"]) as (rwsgi, gunicorn_address):
        for server, address in (("rwsgi", rwsgi), ("gunicorn", gunicorn_address)):
            env = environ(address, headers, path)
            assert {key: env.get(key) for key in expected} == expected, server


def test_forwarder_headers_pass_even_where_underscores_are_refused(servers):
    srv = servers.start(["--header-map", "refuse", "testapp:app"])
    address = (srv.host, srv.port)
    assert environ(address, [b"X_Other: 1"]) == 400
    assert environ(address, [b"SCRIPT_NAME: /app"], b"/app/environ")["SCRIPT_NAME"] == "/app"


@pytest.mark.parametrize("strip", [False, True], ids=["refused", "stripped"])
def test_spaces_before_a_colon_as_in_gunicorn(servers, tmp_path, strip):
    args = (["--strip-header-spaces"] if strip else []) + ["testapp:app"]
    with both(servers, tmp_path, args) as (rwsgi, gunicorn_address):
        for server, address in (("rwsgi", rwsgi), ("gunicorn", gunicorn_address)):
            env = environ(address, [b"X-Test \t: v"])
            if strip:
                assert env["HTTP_X_TEST"] == "v", server
            else:
                assert env == 400, server


# -- the workers' groups -------------------------------------------------------


@pytest.fixture
def user_with_groups():
    """A user whose groups are its own and one more, made for the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    user, extra = "rwsgi-initgroups", "rwsgi-extra"
    subprocess.run(["groupadd", "-f", extra], check=True)
    subprocess.run(["userdel", user], stderr=subprocess.DEVNULL)
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "-G", extra, user], check=True)
    try:
        yield user, int(subprocess.check_output(["getent", "group", extra], text=True).split(":")[2])
    finally:
        subprocess.run(["userdel", user])
        subprocess.run(["groupdel", extra], stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("initgroups", [False, True], ids=["own-group", "initgroups"])
def test_initgroups_gives_the_workers_every_group_of_the_user(servers, user_with_groups, initgroups):
    user, extra_gid = user_with_groups
    srv = servers.start((["--initgroups"] if initgroups else []) + ["-u", user, "testapp:app"])
    ids = json.loads(get((srv.host, srv.port), b"/groups")[1])
    assert ids["gid"] != 0 and ids["uid"] != 0
    expected = sorted({ids["gid"], extra_gid}) if initgroups else [ids["gid"]]
    assert ids["groups"] == expected


# -- PasteDeploy -------------------------------------------------------------------


PASTE_INI = """\
[DEFAULT]
greeting = hello

[app:main]
use = call:testapp:paste_factory
colour = blue

[app:other]
use = call:testapp:paste_factory
colour = red

[loggers]
keys = root, paste

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = file

[logger_paste]
level = INFO
handlers = file
qualname = testapp.paste
propagate = 0

[handler_file]
class = FileHandler
args = ('%(here)s/paste.log', 'a')
formatter = plain

[formatter_plain]
format = %(name)s %(levelname)s %(message)s
"""


@pytest.mark.parametrize("section", ["", "#other"], ids=["main", "named"])
def test_a_paste_app_loads_as_gunicorn_loads_it(servers, tmp_path, section):
    ini = tmp_path / "app.ini"
    ini.write_text(PASTE_INI)
    args = ["--paste", str(ini) + section, "--paste-global", "greeting=hi", "--paste-global", "x\\=y=z"]
    with both(servers, tmp_path, args) as (rwsgi, gunicorn_address):
        seen = {}
        for server, address in (("rwsgi", rwsgi), ("gunicorn", gunicorn_address)):
            status, body = get(address, b"/paste")
            assert status == 200, (server, body)
            seen[server] = json.loads(body)
    assert seen["rwsgi"] == seen["gunicorn"]
    assert seen["rwsgi"]["local_conf"] == {"colour": "red" if section else "blue"}
    assert seen["rwsgi"]["global_conf"]["greeting"] == "hi"
    assert seen["rwsgi"]["global_conf"]["x=y"] == "z"
    # The ini's [loggers] configured Python's logging in both.
    log = (tmp_path / "paste.log").read_text()
    assert log.count("testapp.paste INFO served /paste") == 2, log


def test_paste_needs_an_existing_file_and_wins_over_a_module(servers, tmp_path):
    result = run_cli(["--paste", str(tmp_path / "missing.ini")])
    assert result.returncode == 1
    assert "paste: %s not found" % (tmp_path / "missing.ini") in result.stderr
    ini = tmp_path / "app.ini"
    ini.write_text(PASTE_INI)
    srv = servers.start(venv() + ["--paster", str(ini), "testapp:app"])
    assert json.loads(get((srv.host, srv.port), b"/")[1])["local_conf"] == {"colour": "blue"}
    assert "testapp:app is not used: --paste names the application" in srv.stderr()


# -- Python's logging ----------------------------------------------------------------


def logging_dict(log_file):
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}},
        "loggers": {"testapp": {"level": "INFO", "handlers": ["file"], "propagate": False}},
        "root": {"level": "WARNING", "handlers": []},
    }


def logging_args(kind, tmp_path, log_file):
    if kind == "dict":
        conf = tmp_path / "conf.py"
        conf.write_text("logconfig_dict = %r\n" % logging_dict(log_file))
        return ["-c", str(conf)]
    if kind == "json":
        conf = tmp_path / "logging.json"
        conf.write_text(json.dumps(logging_dict(log_file)))
        return ["--log-config-json", str(conf)]
    conf = tmp_path / "logging.ini"
    conf.write_text(
        "[loggers]\nkeys = root, testapp\n[handlers]\nkeys = file\n[formatters]\nkeys = plain\n"
        "[logger_root]\nlevel = WARNING\nhandlers =\n"
        "[logger_testapp]\nlevel = INFO\nhandlers = file\nqualname = testapp\npropagate = 0\n"
        "[handler_file]\nclass = FileHandler\nargs = ('%(here)s/" + log_file.name + "', 'a')\nformatter = plain\n"
        "[formatter_plain]\nformat = %(name)s %(levelname)s %(message)s\n"
    )
    return ["--log-config", str(conf)]


@pytest.mark.parametrize("kind", ["dict", "json", "ini"])
def test_a_logging_configuration_reaches_the_apps_loggers_as_in_gunicorn(servers, tmp_path, kind):
    log_file = tmp_path / "app.log"
    args = logging_args(kind, tmp_path, log_file) + ["testapp:app"]
    with both(servers, tmp_path, args) as (rwsgi, gunicorn_address):
        assert get(rwsgi, b"/log?msg=from-rwsgi")[0] == 200
        assert get(gunicorn_address, b"/log?msg=from-gunicorn")[0] == 200
        lines = wait_for(lambda: log_file.exists() and log_file.read_text().count("\n") >= 2 and log_file.read_text(), 5,
                         message="both log lines")
    assert "testapp INFO from-rwsgi\n" in lines and "testapp INFO from-gunicorn\n" in lines, lines


def test_a_broken_logging_configuration_is_one_error_at_start(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("logconfig_dict = {'handlers': {'h': {'class': 'no.such.Handler'}}, 'loggers': {}}\n")
    result = run_cli(["-c", str(conf), "testapp:app"], timeout=30)
    assert result.returncode != 0
    assert result.stderr.count("cannot configure Python's logging") == 1, result.stderr
    assert "no.such" in result.stderr


def test_a_logging_dict_holding_a_class_names_the_fix(tmp_path):
    _, stderr = refused_config(tmp_path, "import logging\nlogconfig_dict = {'formatters': {'f': {'()': logging.Formatter}}}\n")
    assert "'logconfig_dict' holds a value that is not data" in stderr
    assert "dotted path" in stderr


# -- syslog ----------------------------------------------------------------------------


class SyslogReceiver:
    """A syslog daemon stand-in: a datagram socket that keeps what arrives."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages = []

    def collect(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(65536))
            except socket.timeout:
                pass
            if predicate(self.messages):
                return self.messages
        raise AssertionError("syslog messages: %r" % self.messages)

    def close(self):
        self.sock.close()


@pytest.fixture
def udp_syslog():
    receiver = SyslogReceiver(socket.AF_INET, ("127.0.0.1", 0))
    yield receiver
    receiver.close()


def normalized(message):
    """A syslog message with its pid, date and duration-free parts made
    comparable across servers."""
    message = re.sub(rb"\[\d+\]", b"[PID]", message)
    return re.sub(rb"\[\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4}\]", b"[DATE]", message)


def access_lines(messages, tag=b"gunicorn.myapp.access"):
    """The access lines of the test's requests (not the readiness probes)."""
    return [m for m in messages if tag in m and b"GET /hello" in m]


def test_syslog_messages_are_gunicorns(servers, tmp_path, udp_syslog):
    port = udp_syslog.sock.getsockname()[1]
    args = ["--log-syslog", "--log-syslog-to", "udp://127.0.0.1:%d" % port, "--log-syslog-prefix", "myapp",
            "--log-syslog-facility", "local7", "testapp:app"]
    with both(servers, tmp_path, args) as (rwsgi, gunicorn_address):
        for address in (rwsgi, gunicorn_address):
            assert get(address, b"/hello", [b"User-Agent: t"])[0] == 200
        messages = udp_syslog.collect(lambda ms: len(access_lines(ms)) >= 2)
    rwsgi_line, gunicorn_line = [normalized(m) for m in access_lines(messages)]
    assert rwsgi_line == gunicorn_line
    assert rwsgi_line == b'<190>gunicorn.myapp.access: [PID] 127.0.0.1 - - [DATE] "GET /hello HTTP/1.1" 200 14 "-" "t"\x00'
    # Error log lines: the same tag and layout, INFO (6) at local7 (23).
    boots = [m for m in messages if re.match(rb"<190>gunicorn\.myapp\.error: \[\d+\] Booting worker with pid: \d+\x00$", m)]
    assert len(boots) == 2, messages


def test_syslog_over_a_unix_socket_with_access_lines_left_out(servers, tmp_path):
    path = str(tmp_path / "log.sock")
    receiver = SyslogReceiver(socket.AF_UNIX, path)
    try:
        srv = servers.start(["--log-syslog", "--log-syslog-to", "unix://" + path, "--disable-redirect-access-to-syslog",
                             "--access-logfile", str(tmp_path / "access.log"), "testapp:app"])
        assert get((srv.host, srv.port), b"/hello")[0] == 200
        messages = receiver.collect(lambda ms: any(b"Booting worker" in m for m in ms))
        # Named after the app when no prefix is given (':' becomes '.').
        assert any(m.startswith(b"<14>gunicorn.testapp.app.error: [") for m in messages), messages
        wait_for(lambda: "GET /hello" in (tmp_path / "access.log").read_text(), 5, message="the access log line")
        time.sleep(0.3)
        assert not [m for m in receiver.messages if b".access:" in m]
    finally:
        receiver.close()


def test_a_bad_syslog_address_or_facility_is_an_error():
    for args, message in (
        (["--log-syslog-to", "udp2://x"], "is not udp://HOST[:PORT], tcp://HOST[:PORT] or unix://PATH"),
        (["--log-syslog-to", "udp://h:x"], "'x' is not a valid port number"),
        (["--log-syslog-facility", "local9"], "invalid value 'local9'"),
    ):
        result = run_cli(args + ["--log-syslog", "testapp:app"])
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)


# -- --spew, names ---------------------------------------------------------------------


def test_spew_prints_each_line_as_gunicorn_does(servers, tmp_path):
    srv = servers.start(["--spew", "testapp:app"])
    with gunicorn(["--spew", "testapp:app"], tmp_path / "gunicorn.log") as gunicorn_address:
        for address in ((srv.host, srv.port), gunicorn_address):
            assert get(address, b"/hello")[0] == 200
        # `module:line: source`, indentation kept, for the app's lines.
        line = re.compile(r"^testapp:\d+:     return \[b\"Hello, world!", re.M)
        wait_for(lambda: line.search(srv.stdout()), 10, message="rwsgi's spew of the app")
        # Gunicorn's master traces itself too, into the same file, and
        # print() writes a line and its newline apart: a worker's line can
        # start in the middle of one of the master's, so it is not anchored.
        anywhere = re.compile(line.pattern.lstrip("^"))
        wait_for(lambda: anywhere.search((tmp_path / "gunicorn.log").read_text(errors="replace")), 30,
                 message="gunicorn's spew of the app")


def test_settings_that_name_things(servers, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("default_proc_name = 'shop'\ntmp_upload_dir = '/nonexistent'\n")
    log = tmp_path / "error.log"
    srv = servers.start(["-c", str(conf), "--log-file", str(log), "testapp:app"])
    wait_for(lambda: log.exists() and "Booting worker" in log.read_text(), 10, message="the error log file (--log-file)")
    titles = subprocess.check_output(["ps", "-o", "args=", "--ppid", str(srv.pid)], text=True)
    assert "rwsgi: worker [shop]" in titles, titles


# -- the migration table -----------------------------------------------------------------


def migration_table():
    """The README's table: name -> (flags, what rwsgi does)."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("<!-- gunicorn-settings:begin -->")[1].split("<!-- gunicorn-settings:end -->")[0]
    rows = {}
    for line in [l for l in section.splitlines() if l.startswith("| `")]:
        name, flags, support = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[name.strip("`")] = ([f.strip("`") for f in flags.split(", ")] if flags.startswith("`") else [], support)
    return rows


def test_the_migration_table_names_every_gunicorn_setting_with_its_flags():
    from gunicorn.config import KNOWN_SETTINGS

    table = migration_table()
    assert sorted(table) == sorted(s.name for s in KNOWN_SETTINGS)
    help_text = run_cli(["--help"]).stdout
    for s in KNOWN_SETTINGS:
        flags, support = table[s.name]
        assert flags == list(s.cli or []), s.name
        accepted = not support.startswith(("not supported", "not for WSGI"))
        for flag in flags:
            assert (re.search(r"(^|[\s,])%s\b" % re.escape(flag), help_text) is not None) == accepted, (s.name, flag)

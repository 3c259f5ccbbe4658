"""Command line and configuration: --version, --check-config,
--print-config, precedence of defaults < config file < GUNICORN_CMD_ARGS <
RWSGI_CMD_ARGS < command line, -k, and bad arguments (where Gunicorn can
resolve the same command line, both must agree)."""

import os
import subprocess
import sys
import tomllib

import pytest

from support import APPS_DIR, REPO_ROOT, run_cli, server_env


def combined(result):
    return result.stdout + result.stderr


def print_config(args, env=None, cwd=None):
    result = run_cli(["--print-config"] + list(args), env=env, cwd=cwd)
    assert result.returncode == 0, combined(result)
    try:
        return tomllib.loads(result.stdout)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError("--print-config output is not TOML (%s):\n%s" % (exc, result.stdout))


def keep_alive(cfg):
    # Gunicorn calls this setting "keepalive"; the --keep-alive spelling gives
    # "keep_alive". Either is accepted.
    for key in ("keepalive", "keep_alive"):
        if key in cfg:
            return cfg[key]
    raise AssertionError("no keepalive/keep_alive setting in %r" % sorted(cfg))


def binds(cfg):
    value = cfg["bind"]
    return [value] if isinstance(value, str) else list(value)


def test_version():
    result = run_cli(["--version"], chdir=None)
    assert result.returncode == 0, combined(result)
    with open(REPO_ROOT / "Cargo.toml", "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    out = combined(result)
    assert "rwsgi" in out.lower()
    assert version in out


def test_unknown_flag_is_an_error():
    result = run_cli(["--definitely-not-a-flag", "testapp:app"], timeout=15, chdir=None)
    assert result.returncode != 0
    assert "--definitely-not-a-flag" in combined(result)


def test_missing_app_argument_is_an_error():
    result = run_cli([], timeout=15, chdir=None)
    assert result.returncode != 0
    assert combined(result).strip() != ""


def test_check_config_good_app():
    result = run_cli(["--check-config", "testapp:app"])
    assert result.returncode == 0, combined(result)


def test_check_config_factory_app():
    result = run_cli(["--check-config", "testapp:make_app('x', key=1)"])
    assert result.returncode == 0, combined(result)


def test_check_config_missing_module():
    result = run_cli(["--check-config", "no_such_module_for_rwsgi:app"])
    assert result.returncode != 0
    assert "no_such_module_for_rwsgi" in combined(result)


def test_check_config_missing_callable():
    result = run_cli(["--check-config", "testapp:no_such_callable"])
    assert result.returncode != 0
    assert "no_such_callable" in combined(result)


def test_check_config_import_error_shows_reason():
    result = run_cli(["--check-config", "broken_app:app"])
    assert result.returncode != 0
    assert "broken_app import failure marker" in combined(result)


def test_print_config_defaults():
    cfg = print_config(["testapp:app"])
    assert cfg["workers"] == 1
    assert binds(cfg) == ["127.0.0.1:8000"]
    assert keep_alive(cfg) == 2
    assert cfg["limit_request_line"] == 4094
    assert cfg["limit_request_fields"] == 100
    assert cfg["limit_request_field_size"] == 8190
    assert cfg["wsgi_app"] == "testapp:app"


def test_print_config_port_and_web_concurrency_env():
    cfg = print_config(["testapp:app"], env={"PORT": "9123", "WEB_CONCURRENCY": "3"})
    assert binds(cfg) == ["0.0.0.0:9123"]
    assert cfg["workers"] == 3


def test_print_config_command_line_values():
    cfg = print_config(
        ["-w", "3", "-b", "127.0.0.1:9001", "-b", "unix:/tmp/rwsgi-print.sock", "--keep-alive", "7", "testapp:app"]
    )
    assert cfg["workers"] == 3
    assert binds(cfg) == ["127.0.0.1:9001", "unix:/tmp/rwsgi-print.sock"]
    assert keep_alive(cfg) == 7


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "rwsgi.toml"
    path.write_text(
        'bind = ["127.0.0.1:9101"]\n'
        "workers = 3\n"
        'wsgi_app = "testapp:app"\n'
        "timeout = 45\n"
    )
    return path


def test_print_config_precedence(config_file):
    # config file over defaults (and over WEB_CONCURRENCY, a default)
    cfg = print_config(["-c", str(config_file)], env={"WEB_CONCURRENCY": "4"})
    assert cfg["workers"] == 3
    assert binds(cfg) == ["127.0.0.1:9101"]
    assert cfg["timeout"] == 45
    assert cfg["wsgi_app"] == "testapp:app"

    # RWSGI_CMD_ARGS over the config file
    env = {"RWSGI_CMD_ARGS": "-w 5 -b 127.0.0.1:9102"}
    cfg = print_config(["-c", str(config_file)], env=env)
    assert cfg["workers"] == 5
    assert binds(cfg) == ["127.0.0.1:9102"]
    assert cfg["timeout"] == 45

    # the command line over everything
    cfg = print_config(["-c", str(config_file), "-w", "7", "-b", "127.0.0.1:9103"], env=env)
    assert cfg["workers"] == 7
    assert binds(cfg) == ["127.0.0.1:9103"]


def test_bad_config_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = [this is not toml\n")
    result = run_cli(["-c", str(bad), "--check-config", "testapp:app"], timeout=15)
    assert result.returncode != 0
    assert combined(result).strip() != ""


def test_missing_config_file_is_an_error(tmp_path):
    result = run_cli(["-c", str(tmp_path / "nope.toml"), "--check-config", "testapp:app"], timeout=15)
    assert result.returncode != 0
    assert "nope.toml" in combined(result)


def test_log_level_is_case_insensitive():
    result = run_cli(["--log-level", "DEBUG", "--print-config", "testapp:app"])
    assert result.returncode == 0, result.stderr
    assert 'loglevel = "DEBUG"' in result.stdout or 'loglevel = "debug"' in result.stdout


def gunicorn_print_config(args, env=None):
    """Gunicorn's own resolved settings for `args` ({name: text})."""
    gunicorn = os.path.join(sys.prefix, "bin", "gunicorn")
    out = subprocess.run([gunicorn] + args + ["--print-config", "testapp:app"], cwd=str(APPS_DIR), env=server_env(env),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30).stdout
    pairs = (line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def rwsgi_print_config(args, env=None):
    result = run_cli(args + ["--print-config", "testapp:app"], env=env)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def test_options_given_twice_take_the_last_value_as_in_gunicorn():
    args = ["-w", "2", "-w", "3", "--timeout", "5", "--timeout", "7"]
    gunicorn = gunicorn_print_config(args)
    assert (gunicorn["workers"], gunicorn["timeout"]) == ("3", "7")
    rwsgi = rwsgi_print_config(args)
    assert (rwsgi["workers"], rwsgi["timeout"]) == (3, 7)


def test_gunicorn_cmd_args_as_in_gunicorn_and_rwsgi_cmd_args_win():
    env = {"GUNICORN_CMD_ARGS": "-w 4 --timeout 9"}
    assert gunicorn_print_config([], env)["workers"] == "4"
    assert rwsgi_print_config([], env)["workers"] == 4
    both = rwsgi_print_config([], dict(env, RWSGI_CMD_ARGS="--timeout 11"))
    assert (both["workers"], both["timeout"]) == (4, 11)


@pytest.mark.parametrize("spelling", ["sync", "gthread", "gunicorn.workers.gthread.ThreadWorker", "egg:gunicorn#sync"])
def test_worker_classes_gunicorn_names(servers, spelling):
    srv = servers.start(["-k", spelling, "--threads", "2", "testapp:app"])
    assert srv.get("/hello").status == 200
    # sync with --threads over 1 is gthread, as in Gunicorn.
    assert "Using worker: gthread (2 threads)" in srv.stderr()


def test_a_worker_class_rwsgi_does_not_run_is_one_readable_error():
    result = run_cli(["-k", "gevent", "testapp:app"])
    assert result.returncode == 1
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "'gevent'" in lines[0] and "gthread --threads N" in lines[0], result.stderr

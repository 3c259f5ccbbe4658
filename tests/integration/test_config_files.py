"""Gunicorn's Python config files: `-c gunicorn.conf.py`, `-c
python:module` and `./gunicorn.conf.py` by default, evaluated in a child
process (never in the master), read again on HUP. Where Gunicorn can
resolve the same file, both must agree."""

import os
import re
import signal
import subprocess
import sys
import time
import tomllib

from support import APPS_DIR, free_port, get_close, http_probe, refused_config, run_cli, server_env, wait_for

CONFIG_WITH_LOGIC = '''
import multiprocessing
import os

bind = "127.0.0.1:" + os.environ["CONF_PORT"]
workers = min(2, multiprocessing.cpu_count())
worker_class = "sync"
threads = int(os.getenv("CONF_THREADS", "1"))
timeout = 45
keepalive = 5
wsgi_app = "testapp:app"
preload_app = False
certfile = "/etc/ssl/private/example.pem"
max_workers = 99  # a variable of the file, not a setting

print("loading the config")


def post_fork(server, worker):
    server.log.info("forked %s", worker.pid)
'''


def print_config(args, env=None, cwd=APPS_DIR):
    result = run_cli(args + ["--print-config"], env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def gunicorn_config(args, env=None, cwd=APPS_DIR):
    gunicorn = os.path.join(sys.prefix, "bin", "gunicorn")
    out = subprocess.run([gunicorn] + args + ["--print-config"], cwd=str(cwd), env=server_env(env),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30).stdout
    pairs = (line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_a_config_with_logic_reads_as_in_gunicorn(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(CONFIG_WITH_LOGIC)
    env = {"CONF_PORT": "8123", "CONF_THREADS": "3"}
    rwsgi = print_config(["-c", str(conf)], env)
    gunicorn = gunicorn_config(["-c", str(conf)], env)
    assert rwsgi["bind"] == ["127.0.0.1:8123"] and gunicorn["bind"] == "['127.0.0.1:8123']"
    for name in ("workers", "threads", "timeout", "keepalive"):
        assert str(rwsgi[name]) == gunicorn[name], name
    assert rwsgi["wsgi_app"] == gunicorn["wsgi_app"] == "testapp:app"


def test_python_module_config():
    rwsgi = print_config(["-c", "python:conf_module"], {"CONF_WORKERS": "3"})
    assert (rwsgi["workers"], rwsgi["timeout"]) == (3, 45)
    # Gunicorn imports it from sys.path, where its cwd is not.
    env = {"CONF_WORKERS": "3", "PYTHONPATH": str(APPS_DIR)}
    assert gunicorn_config(["-c", "python:conf_module", "testapp:app"], env)["workers"] == "3"


def test_gunicorn_conf_py_is_read_by_default_and_runs_the_app_it_names(servers, tmp_path):
    port = free_port()
    (tmp_path / "gunicorn.conf.py").write_text(CONFIG_WITH_LOGIC)
    srv = servers.start(["--pythonpath", str(APPS_DIR)], bind=None, chdir=None, cwd=str(tmp_path),
                        env={"CONF_PORT": str(port)}, ready=("127.0.0.1", port))
    assert srv.get("/hello").status == 200
    srv.wait_booted(2)
    log = srv.stderr()
    assert "gunicorn.conf.py: loading the config" in log
    assert "Gunicorn settings rwsgi does not have, ignored: certfile" in log
    assert "max_workers" not in log
    # Its post_fork hook ran in each worker, and printed once only (when
    # read), not again where its hooks are loaded.
    wait_for(lambda: len(re.findall(r"forked (\d+)", srv.stderr())) == 2, 10, message="post_fork in each worker")
    assert sorted(int(p) for p in re.findall(r"forked (\d+)", srv.stderr())) == sorted(set(srv.booted_pids()))
    assert srv.stderr().count("loading the config") + srv.stdout().count("loading the config") == 1


def test_check_config_lists_the_hooks(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text(CONFIG_WITH_LOGIC)
    result = run_cli(["-c", str(conf), "--check-config"], env={"CONF_PORT": "8124"})
    assert result.returncode == 0, result.stderr
    assert "Server hooks: post_fork" in result.stdout


def test_a_broken_config_at_start_is_one_error_with_its_traceback(tmp_path):
    conf, stderr = refused_config(tmp_path, "import os\nworkers = int(os.environ['NO_SUCH_VARIABLE'])\n", "broken.py")
    assert stderr.startswith("Error: config file %s: it failed:" % conf), stderr
    assert "KeyError: 'NO_SUCH_VARIABLE'" in stderr
    assert 'File "%s", line 2' % conf in stderr


def test_hup_reads_the_file_again_and_a_broken_one_keeps_the_old(servers, tmp_path):
    conf = tmp_path / "live.py"
    conf.write_text("workers = 1\n")
    srv = servers.start(["-c", str(conf), "testapp:app"])
    srv.wait_booted(1)
    conf.write_text("workers = 3\n")
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: "Reload: 3 new workers booted" in srv.stderr(), 20, message="a reload to 3 workers")
    conf.write_text("workers = (\n")
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: "Reload failed, old workers keep serving" in srv.stderr(), 20, message="a failed reload")
    log = srv.stderr()
    assert log.count("SyntaxError") == 1, log[-2000:]
    assert srv.get("/hello").status == 200


def test_what_a_config_file_may_hold_besides_settings(tmp_path):
    """Strings past the BMP, huge numbers, dicts, a dict that holds
    itself, sets of Gunicorn-only settings and a process started at
    import: the file still reads, in moments."""
    conf = tmp_path / "rich.py"
    conf.write_text(
        "import subprocess\n"
        "BANNER = 'serving \U0001F680'\n"
        "HUGE = 2 ** 80\n"
        "secure_scheme_headers = {'X-FORWARDED-PROTO': 'https'}\n"
        "reload_extra_files = {'b.html', 'a.html'}\n"
        "dirty_apps = {'a:app', 'b:app'}\n"
        "LOOP = {}\nLOOP['self'] = LOOP\n"
        "helper = subprocess.Popen(['sleep', '61.5'])\n"
        "workers = 2\n"
    )
    result = run_cli(["-c", str(conf), "--check-config", "testapp:app"], timeout=20)
    assert result.returncode == 0, result.stderr
    assert "Gunicorn settings rwsgi does not have, ignored: dirty_apps" in result.stderr
    printed = print_config(["-c", str(conf), "testapp:app"])
    assert printed["workers"] == 2
    # A set for a list setting: any iterable, as Gunicorn takes it.
    assert printed["reload_extra_files"] == ["a.html", "b.html"]
    assert printed["secure_scheme_headers"] == {"X-FORWARDED-PROTO": "https"}
    leftovers = subprocess.run(["pgrep", "-f", "sleep 61.5"], stdout=subprocess.PIPE, text=True).stdout
    assert leftovers.strip() == "", "a process the config file started outlived its reading"


def test_a_setting_of_the_wrong_type_is_an_error(tmp_path):
    _, stderr = refused_config(tmp_path, "bind = ['127.0.0.1:8000', 8001]\n")
    assert "'bind' has a value of the wrong type" in stderr


def test_hup_applies_new_binds_and_log_settings_from_the_file(servers, tmp_path):
    port1, port2 = free_port(), free_port()
    log1, log2, access = tmp_path / "one.log", tmp_path / "two.log", tmp_path / "access.log"
    conf = tmp_path / "live.py"
    settings = "bind = %r\nerrorlog = %r\nloglevel = %r\naccesslog = %r\nwsgi_app = 'testapp:app'\n"
    conf.write_text(settings % (["127.0.0.1:%d" % port1], str(log1), "info", None))
    srv = servers.start(["-c", str(conf)], bind=None, ready=("127.0.0.1", port1))
    wait_for(lambda: "Booting worker" in log1.read_text(), 10, message="the first error log")
    binds = ["127.0.0.1:%d" % port1, "127.0.0.1:%d" % port2]
    conf.write_text(settings % (binds, str(log2), "info", str(access)))
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: http_probe(("127.0.0.1", port2)), 20, message="the new bind to answer")
    # The master and the new workers log where the file now says.
    wait_for(lambda: "Reload: 1 new workers booted" in log2.read_text(), 10, message="the reload in the new log")
    assert "Listening at: http://127.0.0.1:%d" % port2 in log2.read_text()
    assert "Reload" not in log1.read_text()
    pid = get_close(("127.0.0.1", port2), b"/pid").split(b"\r\n\r\n", 1)[1]
    wait_for(lambda: "GET /pid" in access.read_text(), 10, message="an access line from a new worker")
    # At the level it now says: a reload to warnings only logs no INFO line.
    conf.write_text(settings % (binds, str(log2), "warning", str(access)))
    before = log2.read_text()
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: get_close(("127.0.0.1", port2), b"/pid").split(b"\r\n\r\n", 1)[1] != pid, 20,
             message="a worker of the new generation")
    time.sleep(0.5)
    after = log2.read_text()[len(before):]
    assert "Handling signal: hup" in after and after.count("[INFO]") == 1, after

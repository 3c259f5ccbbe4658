"""A Gunicorn config file defining every server hook; each appends one
JSON line of evidence to $HOOK_EVIDENCE (the hook, the process it ran in,
and what its arguments said). $HOOK_RAISE and $HOOK_HANG name hooks (comma
separated) that raise after writing their line, or never return. Read by
rwsgi and by Gunicorn alike (test_hooks.py)."""

import json
import os
import time

EVIDENCE = os.environ.get("HOOK_EVIDENCE", "/dev/null")
RAISE = set(filter(None, os.environ.get("HOOK_RAISE", "").split(",")))
HANG = set(filter(None, os.environ.get("HOOK_HANG", "").split(",")))


def record(hook, **facts):
    facts.update(hook=hook, pid=os.getpid(), t=time.time())
    # One short line per write on an O_APPEND file: lines from several
    # processes never interleave.
    with open(EVIDENCE, "a") as f:
        f.write(json.dumps(facts) + "\n")
    if hook in RAISE:
        raise RuntimeError("%s failed on purpose" % hook)
    if hook in HANG:
        time.sleep(3600)


def server_facts(server):
    return {"server_pid": server.pid, "num_workers": server.num_workers, "cfg_timeout": server.cfg.timeout}


def worker_facts(worker):
    return {"wpid": worker.pid, "age": worker.age, "alive": worker.alive, "booted": worker.booted,
            "aborted": worker.aborted, "nr": worker.nr, "cfg_workers": worker.cfg.workers}


def on_starting(server):
    server.log.info("hooks_conf: on_starting")
    record("on_starting", **server_facts(server))


def on_reload(server):
    record("on_reload", **server_facts(server))


def when_ready(server):
    record("when_ready", workers=len(server.WORKERS), **server_facts(server))


def pre_fork(server, worker):
    record("pre_fork", **server_facts(server), **worker_facts(worker))


def post_fork(server, worker):
    worker.log.info("hooks_conf: post_fork in %s", worker.pid)
    record("post_fork", **server_facts(server), **worker_facts(worker))


def post_worker_init(worker):
    record("post_worker_init", app=callable(worker.wsgi), **worker_facts(worker))


def worker_int(worker):
    record("worker_int", **worker_facts(worker))


def worker_abort(worker):
    record("worker_abort", **worker_facts(worker))


def pre_exec(server):
    record("pre_exec", **server_facts(server))


def pre_request(worker, req):
    record("pre_request", method=req.method, uri=req.uri, path=req.path, query=req.query,
           version=list(req.version), headers=[list(h) for h in req.headers if h[0].startswith("X-")],
           **worker_facts(worker))


def post_request(worker, req, environ, resp):
    record("post_request", path=req.path, environ_path=environ.get("PATH_INFO"),
           status=resp.status if resp is not None else "no response",
           status_code=getattr(resp, "status_code", None),
           content_type=[v for k, v in (resp.headers if resp is not None else []) if k.lower() == "content-type"],
           **worker_facts(worker))


def child_exit(server, worker):
    server.log.info("hooks_conf: child_exit %s", worker.pid)
    record("child_exit", **server_facts(server), **worker_facts(worker))


def worker_exit(server, worker):
    record("worker_exit", **server_facts(server), **worker_facts(worker))


def nworkers_changed(server, new_value, old_value):
    record("nworkers_changed", new=new_value, old=old_value)


def on_exit(server):
    record("on_exit", **server_facts(server))

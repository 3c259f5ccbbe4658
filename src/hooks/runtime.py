# rwsgi's Python side of Gunicorn's config files and server hooks: loading
# a config file as Gunicorn does, the objects hooks receive (server,
# worker, req, resp, and their cfg and log), the workers' hook calls, and
# the loop of the hook process, which runs the master-side hooks for a
# master that runs no Python. Run by rwsgi (the config evaluator, the
# workers, the hook process) in the scope of one exec; never imported.

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import json
import os
import sys
import time
import traceback

# Gunicorn's hooks and the number of positional arguments each takes.
ARITY = {
    'on_starting': 1, 'on_reload': 1, 'when_ready': 1, 'pre_fork': 2, 'post_fork': 2,
    'post_worker_init': 1, 'worker_int': 1, 'worker_abort': 1, 'pre_exec': 1, 'pre_request': 2,
    'post_request': 4, 'child_exit': 2, 'worker_exit': 2, 'nworkers_changed': 3, 'on_exit': 1,
    'ssl_context': 2,
}


def load_module(target):
    """The names a config file defines: a file is executed as the module
    `__config__` (whatever its extension), `python:NAME` is imported."""
    if target.startswith('python:'):
        return vars(importlib.import_module(target[len('python:'):]))
    loader = importlib.machinery.SourceFileLoader('__config__', target)
    spec = importlib.util.spec_from_file_location('__config__', target, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules['__config__'] = module
    spec.loader.exec_module(module)
    return vars(module)


def positional_arity(fn):
    """Positional parameters, as Gunicorn counts them (defaults included)."""
    import inspect  # here: reading a config file without hooks stays quick
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


def resolve_hook(name, value):
    """A hook's function: a callable, or a dotted path to one (Gunicorn
    takes both), checked for Gunicorn's number of arguments; post_request
    may take 2, 3 or 4. Raises TypeError with Gunicorn's words."""
    if isinstance(value, str):
        module, _, attr = value.rpartition('.')
        if not module:
            raise TypeError("Value %r is not import string. Format: module[.submodules...].object" % value)
        value = getattr(importlib.import_module(module), attr)
    if not callable(value):
        raise TypeError('Value is not callable: %s' % value)
    arity = positional_arity(value)
    if name == 'post_request' and arity in (2, 3):
        fn = value
        return (lambda w, r, e, s: fn(w, r)) if arity == 2 else (lambda w, r, e, s: fn(w, r, e))
    if arity != ARITY[name]:
        raise TypeError('%s must take %d positional argument%s (Gunicorn: "Value must have an arity of: %d")'
                        % (name, ARITY[name], '' if ARITY[name] == 1 else 's', ARITY[name]))
    return value


def load_hooks(target, wanted):
    """The hooks of `wanted` the config file defines, resolved. What the
    file prints was shown once already, when rwsgi read its settings."""
    with contextlib.redirect_stdout(io.StringIO()):
        names = load_module(target)
    return {name: resolve_hook(name, names[name]) for name in wanted if name in names}


class Config:
    """Gunicorn's cfg: every setting as an attribute (read-only)."""

    def __init__(self, settings):
        object.__setattr__(self, '_settings', settings)

    def __getattr__(self, name):
        try:
            return self._settings[name]
        except KeyError:
            raise AttributeError('No configuration setting for: %s' % name) from None

    def __setattr__(self, name, value):
        raise AttributeError('Invalid access!')

    @property
    def settings(self):
        return {name: Setting(name, value) for name, value in self._settings.items()}


class Setting:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def get(self):
        return self.value


class Logger:
    """Gunicorn's server.log and worker.log: lines in rwsgi's error log, at
    or above --log-level. `emit(level, text)` writes one."""

    LEVELS = {'critical': 50, 'error': 40, 'warning': 30, 'info': 20, 'debug': 10}

    def __init__(self, emit, level):
        self.emit = emit
        self.level = self.LEVELS.get(str(level).lower(), 20)

    def _write(self, level, msg, args, exc_info=False):
        if level < self.level:
            return
        text = str(msg) % args if args else str(msg)
        if exc_info and sys.exc_info()[0] is not None:
            text += '\n' + traceback.format_exc().rstrip('\n')
        self.emit(level, text)

    def critical(self, msg, *args, **kw):
        self._write(50, msg, args, kw.get('exc_info'))

    def error(self, msg, *args, **kw):
        self._write(40, msg, args, kw.get('exc_info'))

    def warning(self, msg, *args, **kw):
        self._write(30, msg, args, kw.get('exc_info'))

    warn = warning

    def info(self, msg, *args, **kw):
        self._write(20, msg, args, kw.get('exc_info'))

    def debug(self, msg, *args, **kw):
        self._write(10, msg, args, kw.get('exc_info'))

    def exception(self, msg, *args, **kw):
        self._write(40, msg, args, True)

    def log(self, lvl, msg, *args, **kw):
        if isinstance(lvl, str):
            lvl = self.LEVELS.get(lvl.lower(), 20)
        self._write(lvl, msg, args, kw.get('exc_info'))


def fd_emitter(fd):
    """Log lines in rwsgi's layout, written to `fd` (the hook process's
    standard error, which is the error log)."""
    names = {50: 'CRITICAL', 40: 'ERROR', 30: 'WARNING', 20: 'INFO', 10: 'DEBUG'}

    def emit(level, text):
        line = '[%s] [%d] [%s] %s\n' % (time.strftime('%Y-%m-%d %H:%M:%S %z'), os.getpid(),
                                         names.get(level, 'INFO'), text)
        try:
            os.write(fd, line.encode('utf-8', 'replace'))
        except OSError:
            pass
    return emit


class Worker:
    """Gunicorn's worker object, as far as hooks use it."""

    def __init__(self, state, cfg, log, ppid):
        self.pid = state.get('pid', '[booting]')
        self.age = state.get('age', 0)
        self.ppid = ppid
        self.alive = state.get('alive', True)
        self.booted = state.get('booted', False)
        self.aborted = state.get('aborted', False)
        self.nr = state.get('nr', 0)
        self.cfg = cfg
        self.log = log
        self.timeout = (cfg.timeout or 0) / 2.0
        self.max_requests = cfg.max_requests or sys.maxsize
        self.app = self.wsgi = None

    def __str__(self):
        return '<Worker %s>' % self.pid


class Server:
    """Gunicorn's arbiter, as far as hooks use it: in the hook process, a
    picture of the master at the moment of the call."""

    WORKER_BOOT_ERROR = 3
    APP_LOAD_ERROR = 4

    def __init__(self, state, cfg, log):
        self.pid = state['pid']
        self.cfg = cfg
        self.log = log
        self.num_workers = state.get('num_workers')
        self.proc_name = cfg.proc_name
        self.master_name = 'Master'
        self.master_pid = 0
        self.reexec_pid = state.get('reexec_pid', 0)
        self.timeout = cfg.timeout
        self.address = cfg.address
        self.LISTENERS = list(cfg.bind)
        self.WORKERS = {w['pid']: Worker(w, cfg, log, self.pid) for w in state.get('workers', [])}
        self.app = None


class Request:
    """Gunicorn's req: the request head, as parsed."""

    def __init__(self, method, uri, path, query, version, headers, scheme, peer):
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.fragment = ''
        self.version = version
        self.headers = headers
        self.trailers = []
        self.scheme = scheme
        self.peer_addr = self.remote_addr = peer

    def __repr__(self):
        return '<Request %s %s>' % (self.method, self.uri)


class Response:
    """Gunicorn's resp, once the response is sent."""

    def __init__(self, status, headers, sent):
        self.status = status
        if status is not None:
            try:
                self.status_code = int(status.split(None, 1)[0])
            except ValueError:
                pass
        self.headers = headers
        self.sent = sent
        lengths = [v for k, v in headers if k.lower() == 'content-length']
        self.response_length = int(lengths[0]) if lengths and lengths[0].isdigit() else None
        self.chunked = False
        self.headers_sent = status is not None
        self.version = 'rwsgi'


class WorkerHooks:
    """A worker's hooks and the objects they receive; rwsgi calls its
    methods at the moments Gunicorn calls the hooks."""

    def __init__(self, hooks, state_json, emit):
        state = json.loads(state_json)
        self.hooks = hooks
        self.cfg = Config(state['cfg'])
        self.log = Logger(emit, self.cfg.loglevel)
        self.server = Server(state['server'], self.cfg, self.log)
        self.worker = Worker(state['worker'], self.cfg, self.log, self.server.pid)
        self.worker.pid = os.getpid()

    def post_fork(self):
        if 'post_fork' in self.hooks:
            self.hooks['post_fork'](self.server, self.worker)

    def post_worker_init(self, app):
        self.worker.app = self.worker.wsgi = app
        if 'post_worker_init' in self.hooks:
            self.hooks['post_worker_init'](self.worker)
        self.worker.booted = True

    def request(self, *head):
        return Request(*head)

    def pre_request(self, req):
        if 'pre_request' in self.hooks:
            self.hooks['pre_request'](self.worker, req)

    def post_request(self, req, environ, status, headers, sent):
        if environ is None:
            # pre_request raised: Gunicorn's empty environ, no response.
            environ, resp = {}, None
        else:
            self.worker.nr += 1
            resp = Response(status, headers, sent)
        if 'post_request' in self.hooks:
            self._logged('post_request', self.worker, req, environ, resp)

    def worker_int(self):
        self.worker.alive = False
        if 'worker_int' in self.hooks:
            self._logged('worker_int', self.worker)

    def worker_abort(self):
        self.worker.alive = False
        if 'worker_abort' in self.hooks:
            self._logged('worker_abort', self.worker)

    def install_signal_handlers(self):
        """Python handlers for the signals whose hooks are defined: SIGINT
        and SIGQUIT run worker_int, SIGABRT (the master's, for a stuck
        worker) worker_abort, then worker_exit; the worker then dies of
        the signal, as it would have without hooks. Python runs them on the
        main thread, between bytecodes or from the worker's signal pipe."""
        import signal
        if 'worker_int' in self.hooks or 'worker_exit' in self.hooks:
            signal.signal(signal.SIGINT, self._on_quit)
            signal.signal(signal.SIGQUIT, self._on_quit)
        if 'worker_abort' in self.hooks or 'worker_exit' in self.hooks:
            signal.signal(signal.SIGABRT, self._on_abort)

    def _on_quit(self, signum, frame):
        if self._dying():
            return
        self.worker_int()
        self.worker_exit()
        # A quick exit still ends Python's way for what the app registered
        # (an exporter's last flush), as Gunicorn's sys.exit does.
        self._logged_call('atexit', __import__('atexit')._run_exitfuncs)
        self._die(signum)

    def _on_abort(self, signum, frame):
        if self._dying():
            return
        self.worker_abort()
        self.worker_exit()
        self._die(signum)

    def _dying(self):
        # A second signal (Ctrl-C reaches a worker from the terminal and
        # from the master) while the hooks of the first run.
        dying, self._dead = getattr(self, '_dead', False), True
        return dying

    def _die(self, signum):
        import signal
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(1)

    def worker_exit(self):
        if 'worker_exit' in self.hooks:
            self._logged('worker_exit', self.server, self.worker)

    def _logged(self, name, *args):
        self._logged_call('%s hook' % name, self.hooks[name], *args)

    def _logged_call(self, what, fn, *args):
        try:
            fn(*args)
        except BaseException:
            self.log.exception('Exception in %s', what)


def serve_master_hooks(fd, target, log_fd, wanted):
    """The hook process: read one JSON call per line from the master on
    socket `fd`, run the hook, answer {"id", "error"}. Only the end of the
    socket (the master gone) ends it; signals meant for the server do not."""
    import signal
    import socket
    for name in ('SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    reader, writer = sock.makefile('rb'), sock.makefile('wb')
    try:
        hooks, load_error = load_hooks(target, wanted), None
    except BaseException:
        hooks, load_error = {}, traceback.format_exc()
    for line in reader:
        call = json.loads(line)
        error = None
        if call['call'] == '__reload__':
            try:
                hooks, load_error = load_hooks(target, wanted), None
            except BaseException:
                error = traceback.format_exc()
        elif load_error is not None:
            error = load_error
        elif call['call'] in hooks:
            cfg = Config(call['cfg'])
            log = Logger(fd_emitter(log_fd), cfg.loglevel)
            server = Server(call['server'], cfg, log)
            worker = Worker(call['worker'], cfg, log, server.pid) if call.get('worker') else None
            args = [server] + ([worker] if worker is not None else []) + list(call.get('args', []))
            try:
                hooks[call['call']](*args)
            except BaseException:
                error = traceback.format_exc()
        writer.write((json.dumps({'id': call['id'], 'error': error}) + '\n').encode())
        writer.flush()

"""Real nginx and HAProxy in front of rwsgi, for test_nginx.py and
test_haproxy.py.

The site files shipped in config/ (config/nginx/*.conf, config/haproxy/
rwsgi.cfg) are rendered for a test by substituting only what has to change
on a test machine: the listen address, the upstream address and the static
root (plus, for TLS, the certificate lines that the file has commented out).
Each substitution must match exactly once, so a change to a shipped file
that the harness no longer understands fails loudly instead of silently
testing something else.

nginx runs from a minimal nginx.conf written into the test's tmp dir (pid,
logs, temp paths all there, `daemon off`), with the rendered site included
from the same directory, next to copies of nginx's uwsgi_params and
mime.types, so the site's own `include uwsgi_params;` works unchanged.
HAProxy runs in the foreground (`-db`) from the shipped file with its
`global` section (chroot, user, daemon, system log and stats socket) swapped
for a test one.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from support import REPO_ROOT, free_port, read_until_close, stop_process_group

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
NGINX_CONF_DIR = Path("/etc/nginx")

CONFIG_DIR = REPO_ROOT / "config"
NGINX_PROXY_SITE = CONFIG_DIR / "nginx" / "rwsgi-proxy.conf"
NGINX_UWSGI_SITE = CONFIG_DIR / "nginx" / "rwsgi-uwsgi.conf"
HAPROXY_CFG = CONFIG_DIR / "haproxy" / "rwsgi.cfg"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# What the shipped files contain where a test needs something else.
SHIPPED_SOCKET = "/run/rwsgi/app.sock"
SHIPPED_HAPROXY_SERVER = "127.0.0.1:8000"


def nginx_missing_reason():
    if not os.access(NGINX, os.X_OK):
        return "nginx is not installed (%s); tests/run.sh installs it" % NGINX
    return None


def haproxy_missing_reason():
    if not os.access(HAPROXY, os.X_OK):
        return "HAProxy is not installed (%s); tests/run.sh installs it" % HAPROXY
    return None


def short_tmp_dir():
    """A fresh directory under /tmp with a short path (unix socket paths are
    limited to ~107 bytes; pytest's tmp dirs can be longer). The caller
    removes it (shutil.rmtree)."""
    return tempfile.mkdtemp(prefix="rwsgi-fe-", dir="/tmp")


# ---------------------------------------------------------------------------
# rendering


def substitute(text, pattern, replacement, source, count=1):
    """re.sub(pattern, replacement) on text (multi-line mode), which must
    match exactly `count` times."""
    new, n = re.subn(pattern, replacement, text, flags=re.M)
    if n != count:
        raise AssertionError(
            "%s: expected %d match(es) of %r, found %d: the test harness "
            "(tests/integration/frontends.py) no longer fits the shipped file" % (source, count, pattern, n)
        )
    return new


def upstream_server(upstream):
    """nginx upstream `server` address: (host, port) -> HOST:PORT, a path ->
    unix:PATH."""
    if isinstance(upstream, (str, Path)):
        return "unix:%s" % upstream
    return "%s:%d" % upstream


def render_nginx_site(path, port, upstream, static_root, tls=None):
    """The shipped nginx site file at path, for a test.

    port: the loopback port to listen on (127.0.0.1 only; the [::] listen
    line is dropped). upstream: (host, port) or a unix socket path for the
    upstream's active `server` line. static_root: the directory behind
    `location /static/`. tls: None, or (certfile, keyfile) to listen with
    TLS using the file's commented-out ssl lines.
    """
    source = str(path)
    text = Path(path).read_text()
    listen = "listen 127.0.0.1:%d%s;" % (port, " ssl" if tls else "")
    text = substitute(text, r"^(\s*)listen 80;$", r"\g<1>" + listen, source)
    text = substitute(text, r"^\s*listen \[::\]:80;\n", "", source)
    if tls:
        certfile, keyfile = tls
        text = substitute(text, r"^(\s*)#ssl_certificate\s+\S+;$", r"\g<1>ssl_certificate %s;" % certfile, source)
        text = substitute(text, r"^(\s*)#ssl_certificate_key\s+\S+;$", r"\g<1>ssl_certificate_key %s;" % keyfile, source)
    text = substitute(
        text,
        r"^(\s*)server unix:%s( [^;]*)?;$" % re.escape(SHIPPED_SOCKET),
        lambda m: "%sserver %s%s;" % (m.group(1), upstream_server(upstream), m.group(2) or ""),
        source,
    )
    text = substitute(
        text,
        r"^(\s*location /static/ \{[^}]*?\balias )\S+;",
        lambda m: "%s%s/;" % (m.group(1), str(static_root).rstrip("/")),
        source,
    )
    return text


def first_server_name(site_text):
    match = re.search(r"^\s*server_name\s+([^\s;]+)", site_text, re.M)
    assert match, "no server_name in the site file"
    return match.group(1)


def site_setting(path, name):
    """The value of a simple `name value;` directive in a shipped file."""
    match = re.search(r"^\s*%s\s+([^;\s]+);" % re.escape(name), Path(path).read_text(), re.M)
    assert match, "%s: no %s directive" % (path, name)
    return match.group(1)


def nginx_size(value):
    """An nginx size (20m, 512k, 1024) in bytes."""
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}
    value = value.lower()
    if value[-1] in units:
        return int(value[:-1]) * units[value[-1]]
    return int(value)


NGINX_MAIN_CONF = """\
# Test wrapper around one rendered site file.
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 512;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    log_format conn '$connection $connection_requests "$request" $status $upstream_addr';
    access_log {dir}/access.log conn;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    include site.conf;
}}
"""


def render_haproxy_cfg(path, port, server, send_proxy="send-proxy-v2", stats_socket=None, tls_pem=None, tls_port=None):
    """The shipped HAProxy file at path, for a test: its global section is
    replaced (no chroot, user, daemon or syslog; logs to stdout; a stats
    socket in the tmp dir), `bind :80` becomes 127.0.0.1:port, the active
    server line points at server=(host, port), and send_proxy replaces its
    send-proxy-v2 keyword (e.g. "send-proxy" for PROXY v1). With tls_pem,
    the commented-out `bind :443 ssl` line listens on tls_port."""
    source = str(path)
    text = Path(path).read_text()
    lines = ["global", "    log stdout format raw local0 info", "    maxconn 256"]
    if stats_socket:
        lines.append("    stats socket %s mode 600 level admin" % stats_socket)
    test_global = "\n".join(lines) + "\n\n"
    text = substitute(text, r"^global\n(?:[ \t]+.*\n|[ \t]*\n)*?(?=^\S)", test_global, source)
    text = substitute(text, r"^(\s*)bind :80$", r"\g<1>bind 127.0.0.1:%d" % port, source)
    if tls_pem:
        text = substitute(
            text, r"^(\s*)#bind :443 ssl crt \S+$", r"\g<1>bind 127.0.0.1:%d ssl crt %s" % (tls_port, tls_pem), source
        )
    text = substitute(
        text,
        r"^(\s*server \S+ )%s send-proxy-v2\b" % re.escape(SHIPPED_HAPROXY_SERVER),
        lambda m: "%s%s:%d %s" % (m.group(1), server[0], server[1], send_proxy),
        source,
    )
    return text


# ---------------------------------------------------------------------------
# processes


def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class Frontend:
    """A running nginx or HAProxy (foreground, own process group)."""

    name = "frontend"

    def __init__(self, args, work_dir, ports):
        self.args = args
        self.dir = Path(work_dir)
        self.ports = ports
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, cwd=str(self.dir)
            )
        try:
            self._wait_listening()
        except BaseException:
            # Not yet known to the manager, which would never stop it.
            stop_process_group(self.proc)
            raise

    @property
    def port(self):
        return self.ports[0]

    def url(self, path="/", scheme="http", port=None):
        return "%s://127.0.0.1:%d%s" % (scheme, port or self.port, path)

    def logs(self):
        """Everything the process and its log files said, for failure messages."""
        parts = []
        for path in sorted(self.dir.glob("*.log")):
            parts.append("--- %s ---\n%s" % (path.name, path.read_text(errors="replace")[-20000:]))
        return "\n".join(parts)

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "%s exited with code %s at start (%r):\n%s" % (self.name, self.proc.returncode, self.args, self.logs())
                )
            if all(_port_open(p) for p in self.ports):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s did not listen on %r within %.0fs:\n%s" % (self.name, self.ports, START_TIMEOUT, self.logs())
                )
            time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stop and reap the process and anything left in its group. Never raises."""
        return stop_process_group(self.proc, sig, STOP_TIMEOUT)


class Nginx(Frontend):
    name = "nginx"

    def __init__(self, work_dir, site_text, port, tls_port=None):
        work_dir = Path(work_dir)
        (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
        # Relative includes (the site's `include uwsgi_params;`) resolve
        # against the directory of the main config file.
        shutil.copy(NGINX_CONF_DIR / "uwsgi_params", work_dir / "uwsgi_params")
        shutil.copy(NGINX_CONF_DIR / "mime.types", work_dir / "mime.types")
        (work_dir / "site.conf").write_text(site_text)
        # Workers of a root master run as `nobody`, who cannot enter pytest's
        # 0700 tmp dirs: keep them root.
        user = "user root;" if os.geteuid() == 0 else ""
        (work_dir / "nginx.conf").write_text(NGINX_MAIN_CONF.format(dir=work_dir, user=user))
        self.site_text = site_text
        args = [NGINX, "-p", str(work_dir), "-c", str(work_dir / "nginx.conf"), "-e", str(work_dir / "startup-error.log")]
        check = subprocess.run(args + ["-t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True)
        if check.returncode != 0:
            raise AssertionError("nginx -t refused the rendered config:\n%s\n--- site.conf ---\n%s" % (check.stdout, site_text))
        super().__init__(args, work_dir, [port] + ([tls_port] if tls_port else []))

    def stop(self, sig=signal.SIGQUIT):
        # SIGQUIT: graceful shutdown (SIGTERM is nginx's fast shutdown).
        return super().stop(sig)

    def access_log(self):
        path = self.dir / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def error_log(self):
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


class HAProxy(Frontend):
    name = "haproxy"

    def __init__(self, work_dir, cfg_text, ports, stats_socket=None):
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg = work_dir / "haproxy.cfg"
        cfg.write_text(cfg_text)
        self.cfg_text = cfg_text
        self.stats_socket = stats_socket
        check = subprocess.run(
            [HAPROXY, "-c", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True
        )
        if check.returncode != 0:
            raise AssertionError("haproxy -c refused the rendered config:\n%s\n--- haproxy.cfg ---\n%s" % (check.stdout, cfg_text))
        super().__init__([HAPROXY, "-f", str(cfg), "-db"], work_dir, list(ports))

    def stats_command(self, command, timeout=5.0):
        """Send one command to the stats socket and return the answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.stats_socket))
            s.sendall(command.encode() + b"\n")
            return read_until_close(s).decode(errors="replace")

    def server_stats(self, backend, server):
        """The `show stat` CSV row of one server, as a dict."""
        text = self.stats_command("show stat")
        lines = text.splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") == server:
                return row
        raise AssertionError("no stats row for %s/%s in:\n%s" % (backend, server, text))


class FrontendManager:
    """Starts nginx/HAProxy processes; stops all of them at teardown."""

    def __init__(self, tmp_dir):
        self.tmp_dir = Path(tmp_dir)
        self.running = []
        self._count = 0
        self._cleanup_dirs = []

    def _work_dir(self, kind):
        self._count += 1
        path = self.tmp_dir / ("%s-%d" % (kind, self._count))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def nginx(self, site_path, upstream, static_root, tls=None, transform=None):
        """Render the shipped site at site_path and run nginx with it.
        transform: an optional function applied to the rendered text (for a
        test that needs a variant of the shipped file)."""
        port = free_port()
        tls_files = None
        if tls:
            tls_files = (tls.certfile, tls.keyfile)
        text = render_nginx_site(site_path, port, upstream, static_root, tls=tls_files)
        if transform is not None:
            text = transform(text)
        proc = Nginx(self._work_dir("nginx"), text, port)
        self.running.append(proc)
        return proc

    def haproxy(self, server, send_proxy="send-proxy-v2", tls=None):
        port = free_port()
        ports = [port]
        tls_port = None
        if tls:
            tls_port = free_port()
            ports.append(tls_port)
        work_dir = self._work_dir("haproxy")
        # The stats socket path must be short.
        sock_dir = short_tmp_dir()
        self._cleanup_dirs.append(sock_dir)
        stats_socket = os.path.join(sock_dir, "admin.sock")
        text = render_haproxy_cfg(
            HAPROXY_CFG, port, server, send_proxy=send_proxy, stats_socket=stats_socket,
            tls_pem=tls.pemfile if tls else None, tls_port=tls_port,
        )
        proc = HAProxy(work_dir, text, ports, stats_socket=stats_socket)
        proc.tls_port = tls_port
        self.running.append(proc)
        return proc

    def stop_all(self):
        for proc in self.running:
            proc.stop()
        self.running = []
        for path in self._cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup_dirs = []


# ---------------------------------------------------------------------------
# TLS material


class TLSFiles:
    """A self-signed certificate for 127.0.0.1/localhost (made with the
    openssl command)."""

    def __init__(self, directory):
        directory = Path(directory)
        self.certfile = directory / "cert.pem"
        self.keyfile = directory / "key.pem"
        self.pemfile = directory / "haproxy.pem"  # cert + key, as HAProxy wants
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self.keyfile), "-out", str(self.certfile),
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )
        self.pemfile.write_bytes(self.certfile.read_bytes() + self.keyfile.read_bytes())

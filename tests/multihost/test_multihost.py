"""Several hosts behind a real load balancer: three rwsgi hosts, each in a
network namespace of its own (veth pairs on a bridge), behind HAProxy and
then nginx, both with the site files shipped in config/, under continuous
load from a client in a fourth namespace. Each host in turn is reloaded
with new code (HUP), upgraded (USR2), drained (TERM) and restarted; one
master is killed with SIGKILL and one host's link is cut and restored.
Requests and failures are counted per phase: no GET fails anywhere;
planned operations lose no POST either; the
unplanned ones lose at most the POSTs in flight, which no balancer may
retry.

Needs root (namespaces), `ip`, nginx and HAProxy (tests/run.sh installs
them and runs this test after the integration suite, as root). The
per-phase counts are written to multihost-counts.json in the test's tmp
dir and printed.

A TERM drain loses nothing because a stopping rwsgi keeps its idle
keep-alive connections open through the drain: the balancer keeps
sending on them until it notices the stop (HAProxy's checks of /ready
take up to about 1.5 s; nginx has none), and each such request is served
with `Connection: close` instead of meeting a close it cannot retry."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import frontends
from support import free_port, pid_alive, rwsgi_bin, wait_for

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip") or frontends.nginx_missing_reason() or frontends.haproxy_missing_reason(),
        reason="needs root, ip, nginx and HAProxy",
    ),
]

SUBNET = "10.231.0"
BALANCER = SUBNET + ".1"
HOSTS = {"h1": SUBNET + ".11", "h2": SUBNET + ".12", "h3": SUBNET + ".13"}
CLIENT = SUBNET + ".100"
APP = '''
import os
VERSION = "{version}"
def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()
    body = ("%s %s %d" % (os.environ["HOST"], VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''
# The load: keep-alive clients to the balancer, 6 sending GET, 2 POST, each
# request recorded (start time, method, ok, what went wrong) until stdin
# closes; the records go to stdout as JSON.
CLIENT_SCRIPT = r'''
import http.client, json, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
records, lock, stop = [], threading.Lock(), threading.Event()
def run(method):
    conn = None
    while not stop.is_set():
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=20)
        started = time.monotonic()
        try:
            conn.request(method, "/", body=b"x" * 100 if method == "POST" else None)
            resp = conn.getresponse()
            body = resp.read().decode()
            ok, why = resp.status == 200 and body.startswith("h"), "%d %s" % (resp.status, body[:40])
        except Exception as e:
            ok, why = False, repr(e)[:80]
            conn.close()
            conn = None
        with lock:
            records.append((started, method, ok, why))
        time.sleep(0.01)
threads = [threading.Thread(target=run, args=(m,)) for m in ["GET"] * 6 + ["POST"] * 2]
for t in threads:
    t.start()
sys.stdin.read()
stop.set()
for t in threads:
    t.join()
json.dump(records, sys.stdout)
'''


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class Network:
    """A bridge in this namespace (the balancer's address) and one
    namespace per host and for the client, each on a veth pair."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.bridge = "rwbr%d" % tag
        self.ns = {name: "rw%s-%d" % (name, tag) for name in list(HOSTS) + ["cl"]}
        self.veth = {name: "rw%s%d" % (name, tag) for name in self.ns}

    def up(self):
        self.remove_leftovers()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", BALANCER + "/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for name, ns in self.ns.items():
            address = HOSTS.get(name, CLIENT)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", self.veth[name], "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", self.veth[name], "master", self.bridge)
            sh("ip", "link", "set", self.veth[name], "up")
            for command in (["addr", "add", address + "/24", "dev", "eth0"], ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"]):
                sh("ip", "netns", "exec", ns, "ip", *command)

    @staticmethod
    def remove_leftovers():
        """What an earlier run that was killed left: its namespaces (and the
        processes in them) and its bridge, which holds the same subnet."""
        for line in sh("ip", "netns", "list").stdout.splitlines():
            ns = line.split()[0] if line.split() else ""
            if re.fullmatch(r"rw(h[123]|cl)-\d+", ns):
                for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
                sh("ip", "netns", "del", ns, check=False)
        for line in sh("ip", "-br", "link").stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if re.fullmatch(r"rwbr\d+", name):
                sh("ip", "link", "del", name, check=False)

    def down(self):
        for ns in self.ns.values():
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)

    def cut(self, name, cut):
        sh("ip", "link", "set", self.veth[name], "down" if cut else "up")


class Host:
    """rwsgi on one host: its namespace, its code directory, its master."""

    def __init__(self, name, net, work):
        self.name, self.address, self.ns = name, HOSTS[name], net.ns[name]
        self.dir = work / name
        self.dir.mkdir()
        self.pidfile = self.dir / "rwsgi.pid"
        self.log = self.dir / "rwsgi.log"
        self.deploy("v1")
        self.proc = None

    def deploy(self, version):
        (self.dir / "app.py").write_text(APP.format(version=version))

    def start(self):
        args = ["ip", "netns", "exec", self.ns, rwsgi_bin(), "-w", "2", "-b", "%s:8000" % self.address,
                "--metrics-bind", "%s:9100" % self.address, "--keep-alive", "75", "--graceful-timeout", "10",
                "--pid", str(self.pidfile), "--chdir", str(self.dir), "-e", "HOST=" + self.name, "app:app"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        wait_for(lambda: self.ready(), 20, message="%s ready" % self.name)

    def url(self, port, path):
        return "http://%s:%d%s" % (self.address, port, path)

    def ready(self):
        try:
            return urllib.request.urlopen(self.url(9100, "/ready"), timeout=2).status == 200
        except OSError:
            return False

    def version(self):
        return urllib.request.urlopen(self.url(8000, "/"), timeout=5).read().decode().split()[1]

    def master(self):
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def new_masters(self):
        """The pids of the masters USR2 started, from the log, in order."""
        return [int(p) for p in re.findall(r"New master started \(pid: (\d+)\)", self.log.read_text(errors="replace"))]

    def workers_booted_by(self, master):
        """Workers booted under `master` (its log lines follow its pid)."""
        text = self.log.read_text(errors="replace")
        start = text.find("[%d] [INFO] Starting rwsgi" % master)
        return text[start:].count("Booting worker with pid") if start >= 0 else 0

    def signal(self, sig):
        os.kill(self.master(), sig)

    def wait_gone(self, pid, timeout=20):
        wait_for(lambda: not pid_alive(pid), timeout, message="%s's master %d to exit" % (self.name, pid))

    def stop(self):
        pid = self.master()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                self.wait_gone(pid, 15)
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)


def render_haproxy(port):
    """The shipped multi-host file: a test global section, `bind :80` on
    `port`, the hosts' addresses, and `timeout server 5s` so that requests
    to a host cut off are retried within the test's time."""
    path = frontends.CONFIG_DIR / "haproxy" / "rwsgi-hosts.cfg"
    text = path.read_text()
    text = frontends.substitute(text, r"^global\n(?:[ \t]+.*\n|[ \t]*\n)*?(?=^\S)",
                                "global\n    log stdout format raw local0 info\n    maxconn 1024\n\n", str(path))
    text = frontends.substitute(text, r"^(\s*)bind :80$", r"\g<1>bind :%d" % port, str(path))
    text = frontends.substitute(text, r"^(\s*)timeout server 60s$", r"\g<1>timeout server 5s", str(path))
    for n, address in enumerate(HOSTS.values(), 1):
        text = frontends.substitute(text, r"\b10\.0\.0\.1%d:8000\b" % n, "%s:8000" % address, str(path))
    return text


def render_nginx(port):
    path = frontends.CONFIG_DIR / "nginx" / "rwsgi-hosts.conf"
    text = path.read_text()
    text = frontends.substitute(text, r"^(\s*)listen 80;$", r"\g<1>listen %d;" % port, str(path))
    text = frontends.substitute(text, r"^(\s*)listen \[::\]:80;\n", "", str(path))
    text = frontends.substitute(text, r"^(\s*)proxy_read_timeout 60s;$", r"\g<1>proxy_read_timeout 5s;", str(path))
    for n, address in enumerate(HOSTS.values(), 1):
        text = frontends.substitute(text, r"\b10\.0\.0\.1%d:8000\b" % n, "%s:8000" % address, str(path))
    return text


class Load:
    """The client in its namespace, and the phases marked against it."""

    def __init__(self, net, port):
        self.proc = subprocess.Popen(["ip", "netns", "exec", net.ns["cl"], sys.executable, "-c", CLIENT_SCRIPT, BALANCER, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.phases = []

    def phase(self, name):
        self.phases.append((name, time.monotonic()))

    def finish(self):
        out, _ = self.proc.communicate("", timeout=60)
        records = json.loads(out)
        counts = []
        for i, (name, start) in enumerate(self.phases):
            end = self.phases[i + 1][1] if i + 1 < len(self.phases) else float("inf")
            mine = [r for r in records if start <= r[0] < end]
            failed = [r for r in mine if not r[2]]
            counts.append({
                "phase": name,
                "requests": len(mine),
                "failed_get": sum(1 for r in failed if r[1] == "GET"),
                "failed_post": sum(1 for r in failed if r[1] == "POST"),
                "failures": sorted({r[3] for r in failed}),
                # Seconds into the phase: what each failure coincided with.
                "failed_at": [round(r[0] - start, 2) for r in failed],
            })
        return counts


def roll(load, hosts):
    """Every operation, each host in turn, as the phases of one load run."""
    load.phase("steady")
    time.sleep(2)
    load.phase("rolling HUP (new code)")
    for host in hosts:
        new = "v%d" % (int(host.version()[1:]) + 1)
        host.deploy(new)
        host.signal(signal.SIGHUP)
        wait_for(lambda: all(host.version() == new for _ in range(4)), 20, message="%s serving %s" % (host.name, new))
        time.sleep(0.5)
    load.phase("rolling USR2 (binary upgrade)")
    for host in hosts:
        # Gunicorn's way: USR2 starts a new master beside the old one; once
        # its workers serve, TERM the old one.
        old, before = host.master(), len(host.new_masters())
        host.signal(signal.SIGUSR2)
        new = wait_for(lambda: host.new_masters()[before:], 20, message="%s's new master" % host.name)[0]
        wait_for(lambda: host.workers_booted_by(new) >= 2, 20, message="%s's new workers" % host.name)
        os.kill(old, signal.SIGTERM)
        host.wait_gone(old)
        wait_for(lambda: host.master() == new and host.ready(), 20, message="%s ready after USR2" % host.name)
        time.sleep(1.5)
    h1, h2, h3 = hosts
    load.phase("TERM drain of h1")
    pid = h1.master()
    os.kill(pid, signal.SIGTERM)
    h1.wait_gone(pid)
    time.sleep(1)
    load.phase("h1 started again")
    h1.start()
    time.sleep(2)
    load.phase("kill -9 of h2's master")
    os.kill(h2.master(), signal.SIGKILL)
    time.sleep(3)
    load.phase("h2 started again")
    wait_for(lambda: not any(pid_alive(p) for p in _rwsgi_pids_in(h2.dir)), 15, message="h2's workers gone")
    h2.start()
    time.sleep(2)
    load.phase("h3's link cut")
    load.net.cut("h3", True)
    time.sleep(4)
    load.phase("h3's link restored")
    load.net.cut("h3", False)
    wait_for(h3.ready, 20, message="h3 ready again")
    time.sleep(3)


def _rwsgi_pids_in(directory):
    """Processes whose working directory is `directory` (a host's master,
    zygote and workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink("/proc/%s/cwd" % entry) == str(directory):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_rolling_operations_behind_haproxy_and_nginx(tmp_path):
    net = Network()
    net.up()
    hosts = [Host(name, net, tmp_path) for name in HOSTS]
    balancers = []
    results = {}
    try:
        for host in hosts:
            host.start()
        for name, make in (("haproxy", _haproxy), ("nginx", _nginx)):
            port = free_port()
            balancer = make(tmp_path / name, port)
            balancers.append(balancer)
            wait_for(lambda: _through(port) is not None, 20, message="%s passing requests" % name)
            load = Load(net, port)
            load.net = net
            try:
                roll(load, hosts)
            finally:
                results[name] = load.finish()
            balancer.stop()
    finally:
        for host in hosts:
            host.stop()
        for balancer in balancers:
            balancer.stop()
        net.down()
        (tmp_path / "multihost-counts.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(results, indent=1))
    logs = "\n".join("--- %s ---\n%s" % (h.name, h.log.read_text(errors="replace")[-3000:]) for h in hosts)
    planned = ("steady", "rolling HUP (new code)", "rolling USR2 (binary upgrade)", "TERM drain of h1", "h1 started again",
               "h2 started again", "h3's link restored")
    for name, counts in results.items():
        for c in counts:
            assert c["requests"] > 0, (name, c)
            # No GET fails in any phase: the balancer retries those.
            assert c["failed_get"] == 0, (name, c, logs)
            if c["phase"] in planned:
                assert c["failed_post"] == 0, (name, c, logs)


def _through(port):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
    except OSError:
        return None


def _haproxy(work, port):
    return frontends.HAProxy(work, render_haproxy(port), [port])


def _nginx(work, port):
    return frontends.Nginx(work, render_nginx(port), port)

//! `--metrics-bind`: the master answers, on a listener of its own, the
//! Prometheus text format (`/metrics`) and the probes an orchestrator
//! asks (`/ready`: a worker of the current generation serves and the
//! server is not stopping; `/live`: the master's loop turns). Everything
//! comes from the scoreboard and the master's own counts: no Python, and
//! nothing on the workers' request path. A client is served from the
//! master's poll without ever blocking it: at most [`MAX_CLIENTS`] at
//! once, [`CLIENT_TIME`] each to send its request, one request per
//! connection.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::view::ServerView;
use crate::sys::tally::STATUS_CLASSES;

/// The poll token of the metrics listener; clients follow it.
pub const LISTENER: Token = Token(3);
const FIRST_CLIENT: usize = 4;
/// Clients served at once.
const MAX_CLIENTS: usize = 16;
/// The longest a client may take to send its request and read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8192;

/// A connection being served.
struct Client {
    stream: Stream,
    since: Instant,
    head: Vec<u8>,
    /// The answer, once the request is in; what is left to write.
    answer: Option<Vec<u8>>,
}

/// `HOST:PORT`, or `unix:PATH`.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

/// A client's connection.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Listener::Tcp(l) => l,
            Listener::Unix(l, _) => l,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The metrics listener and its clients.
pub struct MetricsServer {
    listener: Listener,
    clients: HashMap<Token, Client>,
    next: usize,
}

impl MetricsServer {
    /// Listen on `address` (`HOST:PORT`, or `unix:PATH`); the error is one
    /// sentence.
    pub fn bind(address: &str, registry: &Registry) -> Result<MetricsServer, String> {
        let failed = |e: std::io::Error| format!("--metrics-bind {address}: {e}");
        let (mut listener, shown) = match address.strip_prefix("unix:") {
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    return Err(format!("--metrics-bind {address}: another server answers there"));
                }
                let _ = std::fs::remove_file(&path);
                let listener = UnixListener::bind(&path).map_err(failed)?;
                (Listener::Unix(listener, path.clone()), format!("unix:{}", path.display()))
            }
            None => {
                let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(address)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("--metrics-bind {address}: not a HOST:PORT or unix:PATH address"))?;
                (Listener::Tcp(TcpListener::bind(addr).map_err(failed)?), format!("http://{addr}"))
            }
        };
        registry.register(listener.source(), LISTENER, Interest::READABLE).map_err(failed)?;
        log::info!("Metrics at: {shown} (/metrics, /ready, /live)");
        Ok(MetricsServer { listener, clients: HashMap::new(), next: FIRST_CLIENT })
    }

    /// Whether `token` is this server's (the listener or a client).
    pub fn owns(&self, token: Token) -> bool {
        token == LISTENER || self.clients.contains_key(&token)
    }

    /// The poll said `token` is ready: accept, read, answer (with a
    /// snapshot taken only when a request is complete).
    pub fn on_event(&mut self, registry: &Registry, token: Token, ready: bool, view: &mut dyn FnMut() -> ServerView) {
        if token == LISTENER {
            return self.accept(registry);
        }
        let Some(client) = self.clients.get_mut(&token) else { return };
        let done = match client.answer {
            None => read_request(client, ready, view),
            Some(_) => Progress::Writing,
        };
        let done = match done {
            Progress::Writing => write_answer(client),
            other => other,
        };
        match done {
            Progress::Reading => {}
            Progress::Writing => {
                let _ = registry.reregister(client.stream.source(), token, Interest::WRITABLE);
            }
            Progress::Done => self.close(registry, token),
        }
    }

    /// Drop clients past [`CLIENT_TIME`].
    pub fn expire(&mut self, registry: &Registry) {
        let late: Vec<Token> = self.clients.iter().filter(|(_, c)| c.since.elapsed() > CLIENT_TIME).map(|(t, _)| *t).collect();
        for token in late {
            self.close(registry, token);
        }
    }

    /// Take the waiting connections. At [`MAX_CLIENTS`], the oldest one
    /// still sending its request makes room: idle connections cannot shut
    /// the probes out.
    fn accept(&mut self, registry: &Registry) {
        loop {
            let Ok(mut stream) = self.listener.accept() else { return };
            if self.clients.len() >= MAX_CLIENTS {
                let oldest = self.clients.iter().filter(|(_, c)| c.answer.is_none()).min_by_key(|(_, c)| c.since).map(|(t, _)| *t);
                match oldest {
                    Some(token) => self.close(registry, token),
                    None => continue,
                }
            }
            let token = Token(self.next);
            self.next = self.next.checked_add(1).unwrap_or(FIRST_CLIENT);
            if registry.register(stream.source(), token, Interest::READABLE).is_ok() {
                self.clients.insert(token, Client { stream, since: Instant::now(), head: Vec::new(), answer: None });
            }
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut client) = self.clients.remove(&token) {
            let _ = registry.deregister(client.stream.source());
        }
    }
}

enum Progress {
    Reading,
    Writing,
    Done,
}

/// Read what came; once the head is whole, make the answer.
fn read_request(client: &mut Client, ready: bool, view: &mut dyn FnMut() -> ServerView) -> Progress {
    let mut chunk = [0u8; 2048];
    loop {
        match client.stream.read(&mut chunk) {
            Ok(0) => return Progress::Done,
            Ok(n) => client.head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Progress::Done,
        }
        if client.head.len() > MAX_HEAD {
            break;
        }
    }
    let whole = client.head.windows(4).any(|w| w == b"\r\n\r\n") || client.head.len() > MAX_HEAD;
    if !whole {
        return Progress::Reading;
    }
    let line = client.head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    client.answer = Some(answer(method, target.split('?').next().unwrap_or(""), ready, view));
    Progress::Writing
}

/// Write what the socket takes of the answer.
fn write_answer(client: &mut Client) -> Progress {
    let Some(answer) = &mut client.answer else { return Progress::Done };
    while !answer.is_empty() {
        match client.stream.write(answer) {
            Ok(n) => {
                answer.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Writing,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Progress::Done,
        }
    }
    Progress::Done
}

/// The whole HTTP/1.1 answer for `method` and `path`.
/// The answer to `method` `path`: the view (which reads `/proc` for every
/// worker) is taken only for `/metrics`, not for each probe.
fn answer(method: &str, path: &str, ready: bool, view: &mut dyn FnMut() -> ServerView) -> Vec<u8> {
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(&view())),
        ("GET" | "HEAD", "/ready") => match ready {
            true => ("200 OK", "text/plain", "ready\n".to_string()),
            false => ("503 Service Unavailable", "text/plain", "not ready\n".to_string()),
        },
        ("GET" | "HEAD", "/live") => ("200 OK", "text/plain", "live\n".to_string()),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found: try /metrics, /ready or /live\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let body = if method == "HEAD" { String::new() } else { body };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The Prometheus text format of `s`.
/// A metric family: its name, type and help line, shown on `/metrics`
/// and listed in the man page.
pub struct Family {
    /// Its name: `rwsgi_...`.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// What it counts, in one line.
    pub help: &'static str,
}

const fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family { name, kind, help }
}

/// Every family `/metrics` shows, in its order.
pub const FAMILIES: [Family; 16] = [
    family("rwsgi_workers", "gauge", "Worker processes, by state."),
    family("rwsgi_workers_wanted", "gauge", "Worker processes wanted (-w, TTIN, TTOU)."),
    family(
        "rwsgi_requests_total",
        "counter",
        "Requests answered, by status class: by the app, and refused by the server (400, 408, 413, 431...).",
    ),
    family(
        "rwsgi_request_duration_seconds",
        "histogram",
        "Time from a request's head to the end of its response, for requests that reached the app.",
    ),
    family("rwsgi_request_bytes_total", "counter", "Request bytes read: heads and bodies."),
    family("rwsgi_response_bytes_total", "counter", "Response bytes written: heads and bodies."),
    family("rwsgi_connections_accepted_total", "counter", "Client connections accepted by the workers."),
    family(
        "rwsgi_connections_handed_over_total",
        "counter",
        "Connections a busy worker handed to another (--handoff-after).",
    ),
    family("rwsgi_listen_queue", "gauge", "Connections waiting in a listening socket's accept queue (TCP)."),
    family(
        "rwsgi_workers_resident_memory_bytes",
        "gauge",
        "Resident memory of the live workers, summed (pages they share count once per worker).",
    ),
    family("rwsgi_workers_cpu_seconds_total", "counter", "CPU time of the workers, alive and gone, user and system."),
    family("rwsgi_workers_started_total", "counter", "Worker processes started."),
    family("rwsgi_worker_exits_total", "counter", "Worker exits, by cause."),
    family("rwsgi_reloads_total", "counter", "Reloads begun (HUP, --reload, the control socket)."),
    family("rwsgi_ready", "gauge", "Whether the server takes traffic (/ready)."),
    family("rwsgi_uptime_seconds", "gauge", "Seconds since the master started."),
];

/// The Prometheus text format of `v`. Every label set is bounded: worker
/// states, status classes, exit causes, histogram buckets, listeners.
fn render(v: &ServerView) -> String {
    let mut out = Exposition(String::new());
    out.family("rwsgi_workers");
    for (state, n) in v.by_state() {
        out.sample("rwsgi_workers", &[("state", state)], n);
    }
    out.family("rwsgi_workers_wanted");
    out.sample("rwsgi_workers_wanted", &[], v.target);
    out.family("rwsgi_requests_total");
    for (class, n) in STATUS_CLASSES.iter().zip(v.totals.by_class) {
        out.sample("rwsgi_requests_total", &[("status", class)], n);
    }
    out.family("rwsgi_request_duration_seconds");
    for (bound, n) in v.totals.cumulative() {
        // As Prometheus' clients write them: `0.005`, `1.0`, `+Inf`.
        let le = if bound.is_infinite() { "+Inf".to_string() } else { format!("{bound:?}") };
        out.sample("rwsgi_request_duration_seconds_bucket", &[("le", &le)], n);
    }
    out.sample("rwsgi_request_duration_seconds_sum", &[], v.totals.duration_sum_us as f64 / 1e6);
    out.sample("rwsgi_request_duration_seconds_count", &[], v.totals.timed());
    out.family("rwsgi_request_bytes_total");
    out.sample("rwsgi_request_bytes_total", &[], v.totals.bytes_in);
    out.family("rwsgi_response_bytes_total");
    out.sample("rwsgi_response_bytes_total", &[], v.totals.bytes_out);
    out.family("rwsgi_connections_accepted_total");
    out.sample("rwsgi_connections_accepted_total", &[], v.totals.accepted);
    out.family("rwsgi_connections_handed_over_total");
    out.sample("rwsgi_connections_handed_over_total", &[], v.totals.handed_over);
    out.family("rwsgi_listen_queue");
    for (listener, _, queue) in &v.listeners {
        if let Some(queue) = queue {
            out.sample("rwsgi_listen_queue", &[("listener", listener)], queue);
        }
    }
    out.family("rwsgi_workers_resident_memory_bytes");
    out.sample("rwsgi_workers_resident_memory_bytes", &[], v.workers.iter().filter_map(|w| w.rss).sum::<u64>());
    out.family("rwsgi_workers_cpu_seconds_total");
    out.sample("rwsgi_workers_cpu_seconds_total", &[], v.cpu);
    out.family("rwsgi_workers_started_total");
    out.sample("rwsgi_workers_started_total", &[], v.spawned);
    out.family("rwsgi_worker_exits_total");
    for (cause, n) in &v.exits {
        out.sample("rwsgi_worker_exits_total", &[("cause", cause)], n);
    }
    out.family("rwsgi_reloads_total");
    out.sample("rwsgi_reloads_total", &[], v.reloads);
    out.family("rwsgi_ready");
    out.sample("rwsgi_ready", &[], u8::from(v.ready));
    out.family("rwsgi_uptime_seconds");
    out.sample("rwsgi_uptime_seconds", &[], format_args!("{:.3}", v.uptime));
    out.0
}

/// Text in Prometheus' exposition format, built a line at a time.
struct Exposition(String);

impl Exposition {
    /// The HELP and TYPE lines of the family `name` (one of [`FAMILIES`]).
    fn family(&mut self, name: &str) {
        let Some(f) = FAMILIES.iter().find(|f| f.name == name) else {
            unreachable!("{name} is not in FAMILIES")
        };
        let _ = writeln!(self.0, "# HELP {name} {}\n# TYPE {name} {}", f.help, f.kind);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        for (i, (label, text)) in labels.iter().enumerate() {
            let open = if i == 0 { "{" } else { "," };
            // The format's escapes: backslash, double quote, newline.
            let text = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(self.0, "{open}{label}=\"{text}\"");
        }
        let close = if labels.is_empty() { "" } else { "}" };
        let _ = writeln!(self.0, "{close} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Totals;

    #[test]
    fn every_family_is_shown_once_in_order_and_parses_as_lines() {
        let view = ServerView {
            workers: Vec::new(),
            target: 2,
            requests: 0,
            totals: Totals::default(),
            cpu: 0.0,
            exits: vec![("timeout", 1)],
            reloads: 0,
            spawned: 2,
            ready: true,
            uptime: 1.0,
            listeners: vec![("http://[::1]:80 \"x\"".to_string(), 3, Some(4))],
        };
        let text = render(&view);
        let shown: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
        let listed: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(shown, listed);
        assert!(text.contains("rwsgi_listen_queue{listener=\"http://[::1]:80 \\\"x\\\"\"} 4\n"), "{text}");
        assert!(text.contains("rwsgi_request_duration_seconds_bucket{le=\"1.0\"} 0\n"), "{text}");
        assert!(text.contains("rwsgi_worker_exits_total{cause=\"timeout\"} 1\n"), "{text}");
    }
}

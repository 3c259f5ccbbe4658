//! `--statsd-host`: the metrics Gunicorn sends to statsd, under its names
//! and in its datagrams, so existing dashboards keep working:
//!
//! - per request, from the worker: `gunicorn.request.duration:MS|ms`,
//!   `gunicorn.requests:1|c|@1.0`, `gunicorn.request.status.CODE:1|c|@1.0`;
//! - per error-log line: `gunicorn.log.error`, `.warning` (`.exception`
//!   for one with a Python traceback), counters;
//! - from the master: `gunicorn.workers:N|g` when the count changes, and
//!   with `--enable-backlog-metric`, `gunicorn.backlog:N|h` (connections
//!   waiting to be accepted, summed over the TCP listeners) once a second.
//!
//! `--statsd-prefix` comes first (with one dot after it), and
//! `--dogstatsd-tags` last (`|#tags`). One datagram socket, connected in
//! the master and inherited by the workers; sends never wait (a collector
//! that is down costs a refused datagram, ignored).

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use crate::config::Config;

/// The collector's socket and the text around each metric.
struct Client {
    socket: Socket,
    prefix: String,
    /// `|#tags`, or empty.
    tags: String,
}

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

static CLIENT: RwLock<Option<Client>> = RwLock::new(None);
/// Whether there is a client: read on every request, without the lock.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Connect to `cfg`'s collector (at start, and again at HUP); none when
/// `--statsd-host` is not given.
pub fn configure(cfg: &Config) -> io::Result<()> {
    let client = match &cfg.statsd_host {
        None => None,
        Some(host) => Some(Client {
            socket: connect(host)?,
            prefix: prefix(&cfg.statsd_prefix),
            tags: if cfg.dogstatsd_tags.is_empty() { String::new() } else { format!("|#{}", cfg.dogstatsd_tags) },
        }),
    };
    ENABLED.store(client.is_some(), Ordering::Relaxed);
    if let Ok(mut slot) = CLIENT.write() {
        *slot = client;
    }
    Ok(())
}

/// `unix:PATH` or `unix://PATH`, else `HOST[:PORT]` (8125 by default).
fn connect(host: &str) -> io::Result<Socket> {
    let failed = |e: io::Error| io::Error::new(e.kind(), format!("--statsd-host {host}: {e}"));
    if let Some(path) = host.strip_prefix("unix://").or_else(|| host.strip_prefix("unix:")) {
        let socket = UnixDatagram::unbound().map_err(failed)?;
        socket.set_nonblocking(true).map_err(failed)?;
        // A collector not there yet is not an error: datagrams are lost
        // until it is (as with UDP).
        let _ = socket.connect(path);
        return Ok(Socket::Unix(socket));
    }
    let with_port = if host.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:8125")
    };
    let to = with_port
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| failed(io::Error::other("no address")))?;
    let socket = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).map_err(failed)?;
    socket.set_nonblocking(true).map_err(failed)?;
    socket.connect(to).map_err(failed)?;
    Ok(Socket::Udp(socket))
}

/// Gunicorn's prefix: as given, with exactly one dot after it.
fn prefix(given: &str) -> String {
    let trimmed = given.trim_end_matches('.');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}.")
    }
}

/// The socket's descriptor, for a worker to keep open.
pub fn fd() -> Option<RawFd> {
    let client = CLIENT.read().ok()?;
    Some(match &client.as_ref()?.socket {
        Socket::Udp(s) => s.as_raw_fd(),
        Socket::Unix(s) => s.as_raw_fd(),
    })
}

/// Whether metrics are sent at all.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Send `name:value|kind`, prefixed and tagged; never waits.
fn send(name: &str, value: &str, kind: &str) {
    if !enabled() {
        return;
    }
    let Ok(client) = CLIENT.read() else { return };
    let Some(client) = client.as_ref() else { return };
    let datagram = format!("{}{name}:{value}|{kind}{}", client.prefix, client.tags);
    let _ = match &client.socket {
        Socket::Udp(s) => s.send(datagram.as_bytes()),
        Socket::Unix(s) => s.send(datagram.as_bytes()),
    };
}

/// A counter, Gunicorn's way (`|c|@1.0`).
pub fn increment(name: &str) {
    send(name, "1", "c|@1.0");
}

/// A gauge.
pub fn gauge(name: &str, value: u64) {
    send(name, &value.to_string(), "g");
}

/// A histogram.
pub fn histogram(name: &str, value: u64) {
    send(name, &value.to_string(), "h");
}

/// A request served: its duration, the count, and its status's count.
pub fn request(duration: Duration, status: &str) {
    if !enabled() {
        return;
    }
    send("gunicorn.request.duration", &python_float(duration.as_secs_f64() * 1000.0), "ms");
    increment("gunicorn.requests");
    if let Some(code) = status.split_whitespace().next().filter(|c| c.parse::<u16>().is_ok()) {
        increment(&format!("gunicorn.request.status.{code}"));
    }
}

/// An error-log line of `level`: Gunicorn's log counters.
pub fn log_line(level: log::Level, message: &str) {
    let name = match level {
        log::Level::Error if message.contains("Traceback (most recent call last)") => "gunicorn.log.exception",
        log::Level::Error => "gunicorn.log.error",
        log::Level::Warn => "gunicorn.log.warning",
        _ => return,
    };
    increment(name);
}

/// A number as Python prints a float (`12.5`, `3.0`), as Gunicorn sends
/// durations.
fn python_float(value: f64) -> String {
    let text = format!("{:.3}", value);
    let text = text.trim_end_matches('0');
    if text.ends_with('.') {
        format!("{text}0")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_numbers_as_gunicorn_writes_them() {
        assert_eq!(prefix(""), "");
        assert_eq!(prefix("app"), "app.");
        assert_eq!(prefix("app..."), "app.");
        assert_eq!(python_float(3.0), "3.0");
        assert_eq!(python_float(12.5), "12.5");
        assert_eq!(python_float(0.1234), "0.123");
    }
}

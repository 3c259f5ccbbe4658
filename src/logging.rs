//! The error log (`[time] [pid] [LEVEL] message`, Gunicorn's layout) as the
//! `log` crate's logger, and the access log with Gunicorn's format atoms.
//!
//! Both write whole lines with one `write` call each, so lines from
//! several workers sharing a file do not interleave. Files are opened in
//! append mode and can be reopened (USR1, logrotate).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;

use crate::config::LogTarget;
use crate::http::Request;
use crate::net::Peer;

/// A log destination.
enum Sink {
    Stdout,
    Stderr,
    File(File, std::path::PathBuf),
}

impl Sink {
    fn open(target: &LogTarget) -> io::Result<Sink> {
        Ok(match target {
            LogTarget::Stdout => Sink::Stdout,
            LogTarget::Stderr => Sink::Stderr,
            LogTarget::File(path) => Sink::File(open_append(path)?, path.clone()),
        })
    }

    fn write_line(&mut self, line: &[u8]) {
        // A log that cannot be written has nowhere to report it; dropping
        // the line is all that is left.
        let _ = match self {
            Sink::Stdout => io::stdout().lock().write_all(line),
            Sink::Stderr => io::stderr().lock().write_all(line),
            Sink::File(f, _) => f.write_all(line),
        };
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File(f, path) = self {
            *f = open_append(path)?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open log file {}: {e}", path.display())))
}

/// The error log.
struct ErrorLog {
    sink: Mutex<Sink>,
    level: log::LevelFilter,
}

static ERROR_LOG: OnceLock<&'static ErrorLog> = OnceLock::new();

impl log::Log for ErrorLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARNING",
            log::Level::Info => "INFO",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        let line = format!(
            "[{}] [{}] [{level}] {}\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z"),
            std::process::id(),
            record.args()
        );
        if let Ok(mut sink) = self.sink.lock() {
            sink.write_line(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Install the error log. Call once, in the master, before forking.
pub fn init_error_log(target: &LogTarget, level: log::LevelFilter) -> io::Result<()> {
    let logger: &'static ErrorLog = Box::leak(Box::new(ErrorLog { sink: Mutex::new(Sink::open(target)?), level }));
    if ERROR_LOG.set(logger).is_ok() {
        // Cannot fail: ERROR_LOG guards against a second call.
        let _ = log::set_logger(logger);
        log::set_max_level(level);
    }
    Ok(())
}

/// Reopen the error log file (USR1).
pub fn reopen_error_log() -> io::Result<()> {
    match ERROR_LOG.get() {
        Some(l) => l.sink.lock().map_or(Ok(()), |mut s| s.reopen()),
        None => Ok(()),
    }
}

/// The error log's file descriptor (stderr's when it goes there).
pub fn error_log_fd() -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    match ERROR_LOG.get().and_then(|l| l.sink.lock().ok()) {
        Some(sink) => match &*sink {
            Sink::File(f, _) => f.as_raw_fd(),
            Sink::Stdout => 1,
            Sink::Stderr => 2,
        },
        None => 2,
    }
}

/// Write text to the error log as it is (`wsgi.errors`).
pub fn write_raw(bytes: &[u8]) {
    match ERROR_LOG.get() {
        Some(l) => {
            if let Ok(mut sink) = l.sink.lock() {
                sink.write_line(bytes);
            }
        }
        None => {
            let _ = io::stderr().write_all(bytes);
        }
    }
}

/// What the access log needs to know about one request.
pub struct AccessInfo<'a> {
    pub peer: &'a Peer,
    pub request: &'a Request,
    /// `200 OK` as the app gave it.
    pub status: &'a str,
    pub response_headers: &'a [(String, String)],
    pub body_bytes: u64,
    pub duration: Duration,
}

/// One piece of a compiled access log format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Literal(String),
    RemoteAddr,
    Dash,
    User,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Status,
    Length,
    LengthOrDash,
    Referer,
    UserAgent,
    Seconds,
    Millis,
    Micros,
    DecimalSeconds,
    Pid,
    RequestHeader(String),
    ResponseHeader(String),
    EnvVar(String),
}

/// The access log: a sink and a compiled format.
pub struct AccessLog {
    sink: Mutex<Sink>,
    atoms: Vec<Atom>,
}

impl AccessLog {
    pub fn open(target: &LogTarget, format: &str) -> io::Result<AccessLog> {
        Ok(AccessLog { sink: Mutex::new(Sink::open(target)?), atoms: compile(format) })
    }

    pub fn reopen(&self) -> io::Result<()> {
        self.sink.lock().map_or(Ok(()), |mut s| s.reopen())
    }

    pub fn log(&self, info: &AccessInfo<'_>) {
        let mut line = render(&self.atoms, info);
        line.push('\n');
        if let Ok(mut sink) = self.sink.lock() {
            sink.write_line(line.as_bytes());
        }
    }
}

/// Compile a Gunicorn `%(atom)s` format. Unknown atoms render as `-`,
/// as in Gunicorn.
fn compile(format: &str) -> Vec<Atom> {
    let mut atoms = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(i) = rest.find("%(") {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find(")s") else {
            literal.push_str(&rest[i..]);
            rest = "";
            break;
        };
        if !literal.is_empty() {
            atoms.push(Atom::Literal(std::mem::take(&mut literal)));
        }
        atoms.push(atom(&after[..end]));
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        atoms.push(Atom::Literal(literal));
    }
    atoms
}

fn atom(name: &str) -> Atom {
    if let Some(inner) = name.strip_prefix('{') {
        if let Some((key, kind)) = inner.rsplit_once('}') {
            let key = key.to_string();
            return match kind {
                "i" => Atom::RequestHeader(key),
                "o" => Atom::ResponseHeader(key),
                "e" => Atom::EnvVar(key),
                _ => Atom::Dash,
            };
        }
    }
    match name {
        "h" => Atom::RemoteAddr,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Length,
        "b" => Atom::LengthOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => Atom::Dash,
    }
}

fn render(atoms: &[Atom], info: &AccessInfo<'_>) -> String {
    let mut out = String::with_capacity(128);
    let header = |name: &str| {
        info.request.header(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_else(|| "-".into())
    };
    for a in atoms {
        match a {
            Atom::Literal(s) => out.push_str(s),
            Atom::RemoteAddr => match info.peer {
                Peer::Tcp(addr) => out.push_str(&addr.ip().to_string()),
                Peer::Unix => out.push('-'),
            },
            Atom::Dash => out.push('-'),
            Atom::User => out.push_str(&basic_auth_user(info.request).unwrap_or_else(|| "-".into())),
            Atom::Time => out.push_str(&chrono::Local::now().format("[%d/%b/%Y:%H:%M:%S %z]").to_string()),
            Atom::RequestLine => {
                out.push_str(&format!("{} {} {}", info.request.method, info.request.target, info.request.version.as_str()))
            }
            Atom::Method => out.push_str(&info.request.method),
            Atom::Path => out.push_str(info.request.path_and_query().0),
            Atom::Query => out.push_str(info.request.path_and_query().1),
            Atom::Protocol => out.push_str(info.request.version.as_str()),
            Atom::Status => out.push_str(info.status.split(' ').next().unwrap_or("-")),
            Atom::Length => out.push_str(&info.body_bytes.to_string()),
            Atom::LengthOrDash if info.body_bytes == 0 => out.push('-'),
            Atom::LengthOrDash => out.push_str(&info.body_bytes.to_string()),
            Atom::Referer => out.push_str(&header("referer")),
            Atom::UserAgent => out.push_str(&header("user-agent")),
            Atom::Seconds => out.push_str(&info.duration.as_secs().to_string()),
            Atom::Millis => out.push_str(&info.duration.as_millis().to_string()),
            Atom::Micros => out.push_str(&info.duration.as_micros().to_string()),
            Atom::DecimalSeconds => out.push_str(&format!("{:.6}", info.duration.as_secs_f64())),
            Atom::Pid => out.push_str(&format!("<{}>", std::process::id())),
            Atom::RequestHeader(name) => out.push_str(&header(name)),
            Atom::ResponseHeader(name) => out.push_str(
                info.response_headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map_or("-", |(_, v)| v.as_str()),
            ),
            Atom::EnvVar(name) => out.push_str(&std::env::var(name).unwrap_or_else(|_| "-".into())),
        }
    }
    out
}

/// The user name of `Authorization: Basic ...`, as Gunicorn's `%(u)s`.
fn basic_auth_user(req: &Request) -> Option<String> {
    let value = req.header("authorization")?;
    let encoded = value.strip_prefix(b"Basic ").or_else(|| value.strip_prefix(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8_lossy(&decoded).into_owned();
    Some(text.split_once(':').map_or(text.clone(), |(u, _)| u.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{BodyFraming, Header, Version};

    fn request() -> Request {
        Request {
            method: "GET".into(),
            target: "/a/b?x=1".into(),
            version: Version::Http11,
            headers: vec![
                Header { name: "User-Agent".into(), value: b"curl/8".to_vec() },
                Header { name: "Authorization".into(), value: b"Basic dXNlcjpwYXNz".to_vec() },
            ],
            framing: BodyFraming::Empty,
            keep_alive: true,
            expect_continue: false,
            head_len: 0,
            params: Vec::new(),
        }
    }

    #[test]
    fn gunicorn_default_format() {
        let req = request();
        let peer = Peer::Tcp("10.0.0.7:5555".parse().unwrap());
        let info = AccessInfo {
            peer: &peer,
            request: &req,
            status: "200 OK",
            response_headers: &[("X-Id".into(), "42".into())],
            body_bytes: 13,
            duration: Duration::from_micros(1500),
        };
        let line = render(&compile(crate::config::settings::DEFAULT_ACCESS_LOG_FORMAT), &info);
        assert!(line.starts_with("10.0.0.7 - user ["), "{line}");
        assert!(line.ends_with(r#"] "GET /a/b?x=1 HTTP/1.1" 200 13 "-" "curl/8""#), "{line}");
        let line = render(&compile("%(m)s %(U)s %(q)s %(s)s %(D)s %({x-id}o)s %({user-agent}i)s %(zz)s 100%"), &info);
        assert_eq!(line, "GET /a/b x=1 200 1500 42 curl/8 - 100%");
    }
}

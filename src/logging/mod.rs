//! The error log (`[time] [pid] [LEVEL] message`, Gunicorn's layout) as the
//! `log` crate's logger, and the access log with Gunicorn's format atoms.
//!
//! Both write whole lines with one `write` call each, so lines from
//! several workers sharing a file do not interleave. Files are opened in
//! append mode and can be reopened (USR1, logrotate). With `--log-syslog`
//! both also go to syslog (`syslog`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;

use crate::config::{Config, LogTarget};
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

pub mod statsd;
pub mod syslog;

/// The error log; its level is `log`'s maximum level.
struct ErrorLog {
    sink: Mutex<Sink>,
}

static ERROR_LOG: OnceLock<&'static ErrorLog> = OnceLock::new();

impl log::Log for ErrorLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        use syslog::Severity;
        let (level, severity) = match record.level() {
            log::Level::Error => ("ERROR", Severity::Error),
            log::Level::Warn => ("WARNING", Severity::Warning),
            log::Level::Info => ("INFO", Severity::Info),
            log::Level::Debug => ("DEBUG", Severity::Debug),
            log::Level::Trace => ("TRACE", Severity::Debug),
        };
        let message = record.args().to_string();
        let line = format!(
            "[{}] [{}] [{level}] {message}\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z"),
            std::process::id(),
        );
        if let Ok(mut sink) = self.sink.lock() {
            sink.write_line(line.as_bytes());
        }
        syslog::send(syslog::Stream::Error, severity, &message);
        statsd::log_line(record.level(), &message);
    }

    fn flush(&self) {}
}

/// Install the error log, in the master, before forking; called again
/// (HUP), point it at the target and level given now. A target that
/// cannot be opened leaves the log as it was.
pub fn init_error_log(target: &LogTarget, level: log::LevelFilter) -> io::Result<()> {
    let sink = Sink::open(target)?;
    match ERROR_LOG.get() {
        Some(logger) => {
            if let Ok(mut old) = logger.sink.lock() {
                *old = sink;
            }
        }
        None => {
            let logger: &'static ErrorLog = Box::leak(Box::new(ErrorLog { sink: Mutex::new(sink) }));
            if ERROR_LOG.set(logger).is_ok() {
                // Cannot fail: ERROR_LOG guards against a second call.
                let _ = log::set_logger(logger);
            }
        }
    }
    log::set_max_level(level);
    Ok(())
}

/// The error log and syslog as `cfg` says: at start, and again at HUP.
pub fn configure(cfg: &Config) -> io::Result<()> {
    init_error_log(&cfg.errorlog, cfg.loglevel)?;
    statsd::configure(cfg)?;
    syslog::configure(&cfg.syslog, &cfg.proc_name)
}

/// The descriptors the logs write to, for a worker to keep open.
pub fn log_fds() -> Vec<std::os::fd::RawFd> {
    let mut fds = vec![error_log_fd()];
    fds.extend(syslog::fd());
    fds.extend(statsd::fd());
    fds
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

/// A descriptor of its own on the error log, for a child process's
/// standard output and error.
pub fn error_log_file() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    match ERROR_LOG.get().and_then(|l| l.sink.lock().ok()) {
        Some(sink) => match &*sink {
            Sink::File(f, _) => f.as_fd().try_clone_to_owned(),
            Sink::Stdout => io::stdout().as_fd().try_clone_to_owned(),
            Sink::Stderr => io::stderr().as_fd().try_clone_to_owned(),
        },
        None => io::stderr().as_fd().try_clone_to_owned(),
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
    /// The client as the app saw it (`%(h)s`).
    pub peer: &'a Peer,
    /// The request head.
    pub request: &'a Request,
    /// `200 OK` as the app gave it.
    pub status: &'a str,
    /// The response headers the app gave (`%({name}o)s`).
    pub response_headers: &'a [(String, String)],
    /// Body bytes sent (`%(B)s`, `%(b)s`).
    pub body_bytes: u64,
    /// From the start of the request to its logging (`%(T)s`, `%(D)s` ...).
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

/// The access log: where lines go, and a compiled format.
pub struct AccessLog {
    /// `--access-logfile`, when given.
    sink: Option<Mutex<Sink>>,
    /// Lines go to syslog too.
    to_syslog: bool,
    atoms: Vec<Atom>,
}

impl AccessLog {
    /// The access log `cfg` asks for, `None` when it asks for none: lines
    /// to `--access-logfile` (opened for appending) and to syslog unless
    /// `--disable-redirect-access-to-syslog`, with the format compiled
    /// once.
    pub fn open(cfg: &Config) -> io::Result<Option<AccessLog>> {
        let to_syslog = syslog::takes_access_lines();
        if cfg.accesslog.is_none() && !to_syslog {
            return Ok(None);
        }
        let sink = cfg.accesslog.as_ref().map(Sink::open).transpose()?.map(Mutex::new);
        Ok(Some(AccessLog { sink, to_syslog, atoms: compile(&cfg.access_log_format) }))
    }

    /// The file's descriptor, when it writes to a file of its own (for a
    /// process that inherits it to keep open).
    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match &*self.sink.as_ref()?.lock().ok()? {
            Sink::File(f, _) => Some(f.as_raw_fd()),
            Sink::Stdout | Sink::Stderr => None,
        }
    }

    /// Reopen the file (USR1, after logrotate moved it).
    pub fn reopen(&self) -> io::Result<()> {
        match &self.sink {
            Some(sink) => sink.lock().map_or(Ok(()), |mut s| s.reopen()),
            None => Ok(()),
        }
    }

    /// Write one line for a finished request.
    pub fn log(&self, info: &AccessInfo<'_>) {
        let mut line = render(&self.atoms, info);
        if self.to_syslog {
            syslog::send(syslog::Stream::Access, syslog::Severity::Info, &line);
        }
        line.push('\n');
        if let Some(Ok(mut sink)) = self.sink.as_ref().map(Mutex::lock) {
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

/// One access log line. What a client or the app controls is escaped as
/// Apache httpd escapes it (`"` and `\` with a backslash, tab, CR and LF
/// in C notation, other control bytes and every byte past ASCII as `\xhh`),
/// so no value can forge a field or a line, and no byte is lost.
fn render(atoms: &[Atom], info: &AccessInfo<'_>) -> String {
    let mut out = String::with_capacity(128);
    let header = |out: &mut String, name: &str| match info.request.header(name) {
        Some(v) => push_escaped(out, v),
        None => out.push('-'),
    };
    for a in atoms {
        match a {
            Atom::Literal(s) => out.push_str(s),
            Atom::RemoteAddr => match info.peer {
                Peer::Tcp(addr) => out.push_str(&addr.ip().to_string()),
                Peer::Unix => out.push('-'),
            },
            Atom::Dash => out.push('-'),
            Atom::User => match basic_auth_user(info.request) {
                Some(user) => push_escaped(&mut out, &user),
                None => out.push('-'),
            },
            Atom::Time => out.push_str(&chrono::Local::now().format("[%d/%b/%Y:%H:%M:%S %z]").to_string()),
            Atom::RequestLine => {
                push_escaped(&mut out, info.request.method.as_bytes());
                out.push(' ');
                push_escaped(&mut out, info.request.target.as_bytes());
                out.push(' ');
                out.push_str(info.request.version.as_str());
            }
            Atom::Method => push_escaped(&mut out, info.request.method.as_bytes()),
            Atom::Path => push_escaped(&mut out, info.request.path_and_query().0.as_bytes()),
            Atom::Query => push_escaped(&mut out, info.request.path_and_query().1.as_bytes()),
            Atom::Protocol => out.push_str(info.request.version.as_str()),
            Atom::Status => push_escaped(&mut out, info.status.split(' ').next().unwrap_or("-").as_bytes()),
            Atom::Length => out.push_str(&info.body_bytes.to_string()),
            Atom::LengthOrDash if info.body_bytes == 0 => out.push('-'),
            Atom::LengthOrDash => out.push_str(&info.body_bytes.to_string()),
            Atom::Referer => header(&mut out, "referer"),
            Atom::UserAgent => header(&mut out, "user-agent"),
            Atom::Seconds => out.push_str(&info.duration.as_secs().to_string()),
            Atom::Millis => out.push_str(&info.duration.as_millis().to_string()),
            Atom::Micros => out.push_str(&info.duration.as_micros().to_string()),
            Atom::DecimalSeconds => out.push_str(&format!("{:.6}", info.duration.as_secs_f64())),
            Atom::Pid => out.push_str(&format!("<{}>", std::process::id())),
            Atom::RequestHeader(name) => header(&mut out, name),
            Atom::ResponseHeader(name) => {
                let value = info.response_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
                match value {
                    // Latin-1 text (PEP 3333): its characters are the bytes.
                    Some((_, v)) => push_escaped(&mut out, &v.chars().map(|c| c as u8).collect::<Vec<u8>>()),
                    None => out.push('-'),
                }
            }
            Atom::EnvVar(name) => match std::env::var_os(name) {
                Some(v) => push_escaped(&mut out, v.as_encoded_bytes()),
                None => out.push('-'),
            },
        }
    }
    out
}

/// Append `bytes` with what could forge or break a log line escaped (see
/// [`render`]).
fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
}

/// The user name of `Authorization: Basic ...`, as Gunicorn's `%(u)s`:
/// the decoded bytes before the first `:`.
fn basic_auth_user(req: &Request) -> Option<Vec<u8>> {
    let value = req.header("authorization")?;
    let encoded = value.strip_prefix(b"Basic ").or_else(|| value.strip_prefix(b"basic "))?;
    let mut decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    if let Some(colon) = decoded.iter().position(|&b| b == b':') {
        decoded.truncate(colon);
    }
    Some(decoded)
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

    #[test]
    fn client_values_cannot_forge_fields_or_lose_bytes() {
        let mut req = request();
        req.target = "/a\"b\\c?q=\"".into();
        req.headers = vec![
            Header { name: "User-Agent".into(), value: b"a\" \"fake-agent".to_vec() },
            Header { name: "Referer".into(), value: b"caf\xe9\\\x01\t".to_vec() },
            // `x"y\:pass`, base64.
            Header { name: "Authorization".into(), value: b"Basic eCJ5XDpwYXNz".to_vec() },
            Header { name: "X-Trace".into(), value: b"\xff\"\x7f".to_vec() },
        ];
        let peer = Peer::Tcp("10.0.0.7:5555".parse().unwrap());
        let info = AccessInfo {
            peer: &peer,
            request: &req,
            status: "200 OK",
            response_headers: &[("X-Out".into(), "\u{e9}\"".into())],
            body_bytes: 0,
            duration: Duration::ZERO,
        };
        let line = render(&compile(crate::config::settings::DEFAULT_ACCESS_LOG_FORMAT), &info);
        assert!(line.starts_with(r#"10.0.0.7 - x\"y\\ ["#), "{line}");
        assert!(line.ends_with(r#""GET /a\"b\\c?q=\" HTTP/1.1" 200 - "caf\xe9\\\x01\t" "a\" \"fake-agent""#), "{line}");
        // Every quote that delimits a field is the format's own.
        assert_eq!(line.matches('"').count() - line.matches("\\\"").count(), 6, "{line}");
        let line = render(&compile("%(U)s|%(q)s|%({x-trace}i)s|%({x-out}o)s"), &info);
        assert_eq!(line, r#"/a\"b\\c|q=\"|\xff\"\x7f|\xe9\""#);
    }
}

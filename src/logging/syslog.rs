//! `--log-syslog`: log lines sent to a syslog daemon as Gunicorn sends
//! them, so filters written for Gunicorn keep working: one message per
//! line, `<PRI>gunicorn.NAME.error: [PID] message` and a NUL (`.access`
//! for access lines), with no timestamp or host name (the daemon adds
//! them). One socket, opened in the master and inherited by the workers.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Mutex;

use crate::config::{Syslog, SyslogAddr};

/// Which log a line comes from: the last part of its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The error log.
    Error,
    /// The access log.
    Access,
}

/// RFC 5424 severities of the lines sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// 3.
    Error = 3,
    /// 4.
    Warning = 4,
    /// 6.
    Info = 6,
    /// 7.
    Debug = 7,
}

/// A connection to the daemon, once made.
enum Connection {
    Udp(UdpSocket),
    UnixDatagram(UnixDatagram),
    UnixStream(UnixStream),
    Tcp(TcpStream),
}

impl Connection {
    fn open(addr: &SyslogAddr) -> io::Result<Connection> {
        Ok(match addr {
            SyslogAddr::Udp(host, port) => {
                let to = (host.as_str(), *port).to_socket_addrs()?.next().ok_or_else(|| io::Error::other("no address"))?;
                let socket = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
                socket.connect(to)?;
                Connection::Udp(socket)
            }
            SyslogAddr::Tcp(host, port) => Connection::Tcp(TcpStream::connect((host.as_str(), *port))?),
            SyslogAddr::Unix(path, dgram_only) => {
                let socket = UnixDatagram::unbound()?;
                match socket.connect(path) {
                    Ok(()) => Connection::UnixDatagram(socket),
                    // A daemon listening on a stream socket.
                    Err(e) if !dgram_only && e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        Connection::UnixStream(UnixStream::connect(path)?)
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        match self {
            Connection::Udp(s) => s.send(message).map(drop),
            Connection::UnixDatagram(s) => s.send(message).map(drop),
            Connection::UnixStream(s) => s.write_all(message),
            Connection::Tcp(s) => s.write_all(message),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Connection::Udp(s) => s.as_raw_fd(),
            Connection::UnixDatagram(s) => s.as_raw_fd(),
            Connection::UnixStream(s) => s.as_raw_fd(),
            Connection::Tcp(s) => s.as_raw_fd(),
        }
    }
}

/// The syslog destination of this process's logs.
struct Sender {
    addr: SyslogAddr,
    /// `None` until the daemon answers: a daemon that is down (or
    /// restarting) is tried again at the next line.
    connection: Option<Connection>,
    facility: u8,
    /// `gunicorn.NAME`.
    tag: String,
    /// Access lines go to syslog too.
    access: bool,
}

static SENDER: Mutex<Option<Sender>> = Mutex::new(None);

/// Start sending to syslog as `syslog` says (or stop, when it is off),
/// with `proc_name` naming the tag when `--log-syslog-prefix` does not.
/// An address that does not resolve is an error; a daemon that does not
/// answer yet is retried at each line.
pub fn configure(syslog: &Syslog, proc_name: &str) -> io::Result<()> {
    let sender = if syslog.enabled {
        let connection = match Connection::open(&syslog.addr) {
            Ok(c) => Some(c),
            Err(e) if matches!(syslog.addr, SyslogAddr::Udp(..)) => {
                return Err(io::Error::new(e.kind(), format!("syslog: cannot reach {:?}: {e}", syslog.addr)));
            }
            Err(e) => {
                log::warn!("syslog: cannot connect yet ({e}); trying again at each line");
                None
            }
        };
        let name = syslog.prefix.clone().unwrap_or_else(|| proc_name.replace(':', "."));
        Some(Sender { addr: syslog.addr.clone(), connection, facility: syslog.facility.code(), tag: format!("gunicorn.{name}"), access: syslog.access })
    } else {
        None
    };
    if let Ok(mut slot) = SENDER.lock() {
        *slot = sender;
    }
    Ok(())
}

/// Send `line` from the `stream` log with `severity`, if syslog is on (and,
/// for access lines, takes them).
pub fn send(stream: Stream, severity: Severity, line: &str) {
    let Ok(mut slot) = SENDER.lock() else { return };
    let Some(sender) = slot.as_mut() else { return };
    if stream == Stream::Access && !sender.access {
        return;
    }
    let suffix = match stream {
        Stream::Error => "error",
        Stream::Access => "access",
    };
    let priority = u16::from(sender.facility) * 8 + severity as u16;
    let message = format!("<{priority}>{}.{suffix}: [{}] {line}\0", sender.tag, std::process::id());
    // One try on the connection there is, one on a fresh one (the daemon
    // restarted); a line that still cannot go is dropped, as a log line
    // that cannot be written must be.
    for _ in 0..2 {
        if sender.connection.is_none() {
            sender.connection = Connection::open(&sender.addr).ok();
        }
        match sender.connection.as_mut().map(|c| c.send(message.as_bytes())) {
            Some(Ok(())) => return,
            Some(Err(_)) => sender.connection = None,
            None => return,
        }
    }
}

/// Whether access lines go to syslog.
pub fn takes_access_lines() -> bool {
    SENDER.lock().ok().is_some_and(|s| s.as_ref().is_some_and(|s| s.access))
}

/// The socket's descriptor, for a worker to keep open.
pub fn fd() -> Option<RawFd> {
    SENDER.lock().ok()?.as_ref()?.connection.as_ref().map(Connection::fd)
}

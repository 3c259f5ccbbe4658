//! Listening sockets and accepted connections.
//!
//! The master binds every `--bind` address here before forking (so workers
//! inherit the same listening sockets and the kernel spreads connections
//! over them); workers accept. Sockets are non-blocking once in a worker:
//! all waiting happens in mio or in `poll` with a deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

use crate::config::BindAddr;
use crate::sys;

/// A bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket (IPv4 or IPv6).
    Tcp(TcpListener),
    /// A unix socket and the path rwsgi created for it (removed on exit);
    /// `None` when inherited.
    Unix(UnixListener, Option<PathBuf>),
}

/// The remote end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client at this address.
    Tcp(SocketAddr),
    /// A client on a unix socket (no address).
    Unix,
}

impl Peer {
    /// The peer's IP address; `None` on a unix socket.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::Unix => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("a unix socket client"),
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Stream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a unix socket.
    Unix(UnixStream),
}

impl Listener {
    /// Bind and listen on `addr`; with `reuse_port`, a TCP socket gets
    /// SO_REUSEPORT (`--reuse-port`).
    pub fn bind(addr: &BindAddr, backlog: i32, reuse_port: bool) -> io::Result<Listener> {
        let backlog = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
        match addr {
            BindAddr::Tcp(sa) => {
                let family = if sa.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
                let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
                socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
                if reuse_port {
                    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
                }
                if sa.is_ipv6() {
                    // Let [::]:PORT and 0.0.0.0:PORT be bound side by side.
                    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
                }
                socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(*sa))?;
                socket::listen(&fd, backlog)?;
                Ok(Listener::Tcp(TcpListener::from(fd)))
            }
            BindAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let fd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
                let ua = socket::UnixAddr::new(path.as_path())?;
                socket::bind(fd.as_raw_fd(), &ua)?;
                socket::listen(&fd, backlog)?;
                Ok(Listener::Unix(UnixListener::from(fd), Some(path.clone())))
            }
            BindAddr::Fd(n) => Listener::adopt(sys::adopt_fd(*n)?, false),
        }
    }

    /// Wrap an inherited listening socket, whatever its family. With
    /// `owns_path`, a unix socket's file is this master's to remove on exit
    /// (handed over by USR2; systemd keeps its own).
    pub fn adopt(fd: OwnedFd, owns_path: bool) -> io::Result<Listener> {
        let accepting: bool = socket::getsockopt(&fd, sockopt::AcceptConn)?;
        if !accepting {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the inherited fd is not a listening socket"));
        }
        let local: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
        Ok(if let Some(unix) = local.as_unix_addr() {
            let path = unix.path().filter(|_| owns_path).map(PathBuf::from);
            Listener::Unix(UnixListener::from(fd), path)
        } else {
            Listener::Tcp(TcpListener::from(fd))
        })
    }

    /// Whether this socket is the one `addr` names (a reload keeps it).
    pub fn bound_to(&self, addr: &BindAddr) -> bool {
        match (self, addr) {
            (Listener::Tcp(l), BindAddr::Tcp(a)) => l.local_addr().is_ok_and(|local| local == *a),
            (Listener::Unix(_, Some(path)), BindAddr::Unix(p)) => path == p,
            (_, BindAddr::Fd(n)) => self.as_raw_fd() == *n,
            _ => false,
        }
    }

    /// Accept one connection without blocking; `WouldBlock` when none waits.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        sys::leave_if_forked_child();
        match self {
            Listener::Tcp(l) => {
                let (fd, peer) = sys::accept_nonblocking(l.as_fd())?;
                let s = TcpStream::from(fd);
                // Responses are written whole; Nagle would only delay them.
                s.set_nodelay(true)?;
                let peer = peer.map_or_else(|| s.peer_addr(), Ok)?;
                Ok((Stream::Tcp(s), Peer::Tcp(peer)))
            }
            Listener::Unix(l, _) => {
                let (fd, _) = sys::accept_nonblocking(l.as_fd())?;
                Ok((Stream::Unix(UnixStream::from(fd)), Peer::Unix))
            }
        }
    }

    /// Make `accept` return `WouldBlock` instead of waiting (in a worker).
    pub fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l, _) => l.set_nonblocking(true),
        }
    }

    /// `SERVER_NAME` and `SERVER_PORT` for requests on this socket, as
    /// Gunicorn gives them: the bound address and port, or the socket path
    /// and an empty port.
    pub fn server_name_port(&self) -> (String, String) {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => (a.ip().to_string(), a.port().to_string()),
                Err(_) => (String::new(), String::new()),
            },
            Listener::Unix(l, path) => {
                let p = path.clone().or_else(|| l.local_addr().ok()?.as_pathname().map(PathBuf::from));
                (p.map(|p| p.display().to_string()).unwrap_or_default(), String::new())
            }
        }
    }

    /// How the master announces this socket: `http://127.0.0.1:8000`,
    /// `unix:/run/app.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|_| "tcp:?".into(), |a| format!("http://{a}")),
            Listener::Unix(_, _) => format!("unix:{}", self.server_name_port().0),
        }
    }

    /// Whether this is a unix socket whose file rwsgi created (and removes).
    pub fn owns_file(&self) -> bool {
        matches!(self, Listener::Unix(_, Some(_)))
    }

    /// Stop listening, in every process that shares the socket (a final
    /// stop): new connections are refused from now on, so a balancer
    /// sends them elsewhere, rather than queued and reset at the close.
    pub fn stop_listening(&self) {
        let _ = nix::sys::socket::shutdown(self.as_raw_fd(), nix::sys::socket::Shutdown::Read);
    }

    /// Remove the socket file rwsgi created (on a final stop).
    pub fn remove_file(&self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

/// Unlink a socket file left by an earlier run, but never a regular file.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Stream {
    /// Shut down both directions (the peer sees EOF even if another
    /// reference to the socket is still open).
    pub fn shutdown(&self) {
        sys::leave_if_forked_child();
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    /// Shut down the sending side only: the peer sees the end of a
    /// close-delimited body while its unread input is still drained.
    pub fn shutdown_write(&self) {
        sys::leave_if_forked_child();
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

// Every read, write and shutdown of a connection first checks that this
// process is the worker and not a child the application forked
// (`sys::leave_if_forked_child`): one atomic load.
impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::leave_if_forked_child();
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::leave_if_forked_child();
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        sys::leave_if_forked_child();
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Blocking-style `Read`/`Write` over a non-blocking stream: each call
/// waits with `poll` until the socket is ready, up to `timeout` (`None`
/// waits forever). A wait that runs out is `ErrorKind::TimedOut`.
pub struct DeadlineIo<'a> {
    /// The connection.
    pub stream: &'a Stream,
    /// The longest wait for each read or write; `None` for none.
    pub timeout: Option<std::time::Duration>,
}

impl DeadlineIo<'_> {
    fn wait(&self, flags: nix::poll::PollFlags) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollTimeout};
        let started = std::time::Instant::now();
        loop {
            // Waiting on a client is progress, not a stuck worker: beat,
            // and wait in slices short enough to keep beating.
            crate::sys::beat();
            let slice = self.timeout.map_or(std::time::Duration::from_secs(1), |t| {
                (t / 4).clamp(std::time::Duration::from_millis(50), std::time::Duration::from_secs(1))
            });
            let left = match self.timeout {
                None => slice,
                Some(t) => {
                    let left = t.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "peer too slow"));
                    }
                    left.min(slice)
                }
            };
            let left = PollTimeout::try_from(left.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.stream.as_fd(), flags)];
            match poll(&mut fds, left) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Read for DeadlineIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::sys::beat();
        loop {
            match (&*self.stream).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(nix::poll::PollFlags::POLLIN)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for DeadlineIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::sys::beat();
        loop {
            match (&*self.stream).write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(nix::poll::PollFlags::POLLOUT)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        crate::sys::beat();
        loop {
            match (&*self.stream).write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(nix::poll::PollFlags::POLLOUT)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DeadlineIo<'_> {
    /// Send `count` bytes of `file` from `offset` with sendfile(2).
    pub fn sendfile(&mut self, file: BorrowedFd<'_>, mut offset: i64, mut count: u64) -> io::Result<u64> {
        sys::leave_if_forked_child();
        let mut sent = 0;
        while count > 0 {
            let chunk = count.min(1 << 30) as usize;
            match nix::sys::sendfile::sendfile(self.stream.as_fd(), file, Some(&mut offset), chunk) {
                Ok(0) => break,
                Ok(n) => {
                    sent += n as u64;
                    count -= n as u64;
                }
                Err(nix::errno::Errno::EAGAIN) => self.wait(nix::poll::PollFlags::POLLOUT)?,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sent)
    }
}

/// A writer that never waits: what the socket does not take at once, and
/// everything after it, is appended to `spill` (for the caller to send
/// later, once it may wait).
pub struct SpillIo<'a> {
    /// The connection.
    pub stream: &'a Stream,
    /// What the socket did not take, in order.
    pub spill: &'a mut Vec<u8>,
}

impl Write for SpillIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut sent = 0;
        if self.spill.is_empty() {
            crate::sys::beat();
            loop {
                match (&*self.stream).write_vectored(bufs) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                    // A short write means the socket is full: keep the rest
                    // now rather than hear EAGAIN from one more write.
                    Ok(n) => {
                        sent = n;
                        break;
                    }
                }
            }
        }
        let mut skip = sent;
        for b in bufs {
            let from = skip.min(b.len());
            skip -= from;
            self.spill.extend_from_slice(&b[from..]);
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `write_all` for several buffers at once: one `writev` in the common case.
pub fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_io_keeps_in_order_what_the_socket_cannot_take() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stream = Stream::Unix(ours);
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let (head, body) = data.split_at(1000);
        let mut spill = Vec::new();
        let mut io = SpillIo { stream: &stream, spill: &mut spill };
        let mut bufs = [io::IoSlice::new(head), io::IoSlice::new(body)];
        write_all_vectored(&mut io, &mut bufs).unwrap();
        // 4 MB is more than a socket pair holds: part of it was kept.
        assert!(!spill.is_empty() && spill.len() < data.len());
        // What the socket took, then what was kept, is the input in order.
        let mut got = vec![0; data.len() - spill.len()];
        (&theirs).read_exact(&mut got).unwrap();
        got.extend_from_slice(&spill);
        assert!(got == data);
        // Once something is kept, later writes are kept after it.
        let before = spill.len();
        let mut io = SpillIo { stream: &stream, spill: &mut spill };
        io.write_all(b"tail").unwrap();
        assert_eq!(&spill[before..], b"tail");
    }
}

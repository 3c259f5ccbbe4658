//! Connections handed between the workers of a generation, so that no
//! request waits behind another client's slow one while a worker is free.
//!
//! A worker keeps its idle keep-alive connections parked in its own poll.
//! While it is busy (its main thread in the app, or every request thread
//! busy) for longer than `--handoff-after`, and another worker is free
//! (the scoreboard says so), it hands every parked connection, and every
//! request still queued for its threads, to the others: each goes, with the bytes already read from it and where its
//! decoding stands, as one message with the socket attached (SCM_RIGHTS)
//! on a `SOCK_SEQPACKET` pair the master made for the generation. Every
//! worker of the generation watches the pair's inbox like a listener and
//! takes a connection from it, one at a time, when it has room and a free
//! thread; the connection carries on there as if it had been accepted
//! there. A connection is in exactly one worker (or in flight), so nothing
//! is served twice or reordered: its bytes not yet read stay in the socket.
//!
//! What stays: a connection in use (its request is running), one closing
//! (lingering), one with a response not yet sent, and everything of a
//! worker that is stopping (it finishes them as before, and takes what
//! the others handed over too: when a whole generation stops, the last
//! of its workers leaves the pair empty).

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use serde_json::{json, Value};

use super::conn::{Conn, ConnState, SocketInput};
use crate::net::{Peer, Stream};
use crate::sys;
use crate::wire::Stage;

/// Room for a message's description of its connection.
const MAX_HEADER: usize = 4 * 1024;
/// The most bytes already read that travel with a connection (one with
/// more stays where it is): a message fits the worker's read buffer.
pub(super) const MAX_CARRIED: usize = 60 * 1024;
/// The buffer a message is received into.
pub(super) const MAX_MESSAGE: usize = MAX_CARRIED + MAX_HEADER;

/// A generation's hand-off pair: every worker sends on `out` and takes
/// from `inbox` (the two ends of one socket pair, inherited at fork).
pub struct Channel {
    out: OwnedFd,
    inbox: OwnedFd,
}

impl Channel {
    /// A new pair (master, for a generation).
    pub fn new() -> io::Result<Channel> {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let (out, inbox) = socket::socketpair(socket::AddressFamily::Unix, SockType::SeqPacket, None, flags)?;
        Ok(Channel { out, inbox })
    }

    /// A second handle on the same pair (for a worker's helper thread).
    pub fn try_clone(&self) -> io::Result<Channel> {
        Ok(Channel { out: self.out.try_clone()?, inbox: self.inbox.try_clone()? })
    }

    /// Both descriptors, for a forked worker or zygote to keep.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.out.as_raw_fd(), self.inbox.as_raw_fd()]
    }

    /// The end a worker watches for connections to take.
    pub fn inbox_fd(&self) -> RawFd {
        self.inbox.as_raw_fd()
    }

    /// Hand `conn` over: whether it went (false: it cannot move, or the
    /// pair is full). The caller then takes it out of its poll and drops
    /// it, in that order: an epoll entry outlives a closed descriptor
    /// while the socket lives on elsewhere.
    pub(super) fn send(&self, conn: &Conn) -> bool {
        let Some(message) = encode(conn, Instant::now()) else { return false };
        let fd = [conn.stream.as_raw_fd()];
        let sent = socket::sendmsg::<()>(
            self.out.as_raw_fd(),
            &[IoSlice::new(&message)],
            &[ControlMessage::ScmRights(&fd)],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        );
        sent.map_err(|e| log::debug!("cannot hand a connection over: {e}")).is_ok()
    }

    /// Take one connection handed over by a worker; `None` when there is
    /// none (another worker took it first).
    /// `scratch` (at least [`MAX_MESSAGE`] bytes) is where it lands.
    pub(super) fn receive(&self, scratch: &mut [u8]) -> io::Result<Option<Conn>> {
        let bytes = scratch;
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(bytes)];
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        let msg = match socket::recvmsg::<()>(self.inbox.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut fd = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    let owned = sys::adopt_fd(raw)?;
                    // (One is sent; any other would only leak.)
                    fd.get_or_insert(owned);
                }
            }
        }
        let (len, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        let Some(fd) = fd else { return Ok(None) };
        if truncated {
            return Ok(None);
        }
        Ok(decode(&bytes[..len], fd, Instant::now()))
    }
}

/// A connection as a message: a JSON description, a zero byte, then the
/// bytes read and not yet used. `None` for one that must stay.
fn encode(conn: &Conn, now: Instant) -> Option<Vec<u8>> {
    let (state, since) = match conn.state {
        ConnState::Fresh { since } => ("fresh", since),
        ConnState::Idle { since } => ("idle", since),
        ConnState::ReadingHead { since } => ("head", since),
        ConnState::Lingering { .. } => return None,
    };
    if !conn.unsent.is_empty() || conn.buf.len() > MAX_CARRIED {
        return None;
    }
    let stage = match &conn.stage {
        Stage::ProxyHeader => Value::Null,
        Stage::Requests(client) => json!(peer_text(client)),
    };
    let header = json!({
        "listener": conn.listener,
        "peer": peer_text(&conn.peer),
        "stage": stage,
        "state": state,
        "age_us": now.saturating_duration_since(since).as_micros() as u64,
        "closed": conn.input == SocketInput::Closed,
    });
    let mut message = serde_json::to_vec(&header).ok()?;
    message.push(0);
    message.extend_from_slice(&conn.buf);
    Some(message)
}

/// The connection a message describes, on socket `fd`.
fn decode(message: &[u8], fd: OwnedFd, now: Instant) -> Option<Conn> {
    let zero = message.iter().position(|b| *b == 0)?;
    let header: Value = serde_json::from_slice(&message[..zero]).ok()?;
    let peer = parse_peer(header["peer"].as_str()?)?;
    let stream = match peer {
        Peer::Tcp(_) => Stream::Tcp(std::net::TcpStream::from(fd)),
        Peer::Unix => Stream::Unix(std::os::unix::net::UnixStream::from(fd)),
    };
    let stage = match header["stage"].as_str() {
        None => Stage::ProxyHeader,
        Some(client) => Stage::Requests(parse_peer(client)?),
    };
    let listener = usize::try_from(header["listener"].as_u64()?).ok()?;
    let since = now.checked_sub(Duration::from_micros(header["age_us"].as_u64()?)).unwrap_or(now);
    let mut conn = Conn::new(stream, peer, stage, listener);
    conn.state = match header["state"].as_str()? {
        "fresh" => ConnState::Fresh { since },
        "idle" => ConnState::Idle { since },
        _ => ConnState::ReadingHead { since },
    };
    conn.buf = message[zero + 1..].to_vec();
    if header["closed"].as_bool() == Some(true) {
        conn.input = SocketInput::Closed;
    }
    Some(conn)
}

fn peer_text(peer: &Peer) -> String {
    match peer {
        Peer::Tcp(addr) => addr.to_string(),
        Peer::Unix => "unix".to_string(),
    }
}

fn parse_peer(text: &str) -> Option<Peer> {
    match text {
        "unix" => Some(Peer::Unix),
        addr => addr.parse().ok().map(Peer::Tcp),
    }
}

/// Whether a worker other than the one in `slot` is free to take a
/// connection now (a lone worker keeps its own: handing them over would
/// only reorder them).
pub(super) fn another_worker_free(slot: usize) -> bool {
    sys::scoreboard::worker_board().is_some_and(|board| board.another_worker_free(slot))
}

/// Hand over every movable connection of `conns`, oldest first: those
/// gone are taken out of the map and out of the poll. How many went.
pub(super) fn hand_over(channel: &Channel, registry: &mio::Registry, conns: &mut HashMap<usize, Conn>, keep: impl Fn(usize) -> bool) -> u64 {
    let mut tokens: Vec<usize> = conns.keys().copied().filter(|t| !keep(*t)).collect();
    // Tokens grow with each connection a worker takes.
    tokens.sort_unstable();
    let mut moved = 0;
    for token in tokens {
        let Some(conn) = conns.get(&token) else { continue };
        if channel.send(conn) {
            let conn = conns.remove(&token).expect("present: just sent");
            forget(registry, conn);
            moved += 1;
        }
    }
    moved
}

/// Let go of a connection handed over: out of this worker's poll, then
/// closed here (the socket lives on in the other worker).
pub(super) fn forget(registry: &mio::Registry, conn: Conn) {
    if conn.watched {
        let _ = registry.deregister(&mut SourceFd(&conn.stream.as_raw_fd()));
    }
    drop(conn);
}

/// `--threads 1`: the parked connections, lent to the helper thread for
/// the length of each app call, so that it can hand them over when the
/// call runs long. The main thread moves the map in before the call and
/// back after it (two uncontended locks per request); the helper looks at
/// it once per tick.
pub(super) struct Lender {
    lent: Mutex<Lent>,
    /// How long a call runs before its worker's connections go.
    after: Duration,
    channel: Channel,
    registry: mio::Registry,
    /// The worker's scoreboard slot.
    slot: usize,
    /// Connections handed over (for the metrics), taken by the main thread.
    moved: AtomicU64,
}

/// What the main thread lends, under the lock.
#[derive(Default)]
struct Lent {
    /// The parked connections while a call runs (swapped in and out: an
    /// empty map between calls, kept for its allocation).
    conns: HashMap<usize, Conn>,
    /// A call is running.
    calling: bool,
    /// Calls begun: the helper tells one long call from many short ones.
    calls: u64,
}

/// What the helper thread last saw of the main thread's calls: the call
/// in progress, and when the helper first saw it.
#[derive(Default)]
pub(super) struct Watch(Option<(u64, Instant)>);

impl Lender {
    pub fn new(channel: Channel, registry: mio::Registry, after: Duration, slot: usize) -> Lender {
        Lender { lent: Mutex::new(Lent::default()), after, channel, registry, slot, moved: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, Lent> {
        self.lent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Before an app call: lend the parked connections (`conns` is left
    /// with an empty map). The lock orders this with the helper's look
    /// before it sleeps: either it sees the call, or the caller then sees
    /// it asleep and wakes it.
    pub fn lend(&self, conns: &mut HashMap<usize, Conn>) {
        let mut lent = self.lock();
        std::mem::swap(&mut lent.conns, conns);
        lent.calling = true;
        lent.calls += 1;
    }

    /// After it: the connections the helper did not hand over, back in
    /// `conns`.
    pub fn take_back(&self, conns: &mut HashMap<usize, Conn>) {
        let mut lent = self.lock();
        std::mem::swap(&mut lent.conns, conns);
        lent.calling = false;
    }

    /// Whether a call is running (the helper must not sleep).
    pub fn busy(&self) -> bool {
        self.lock().calling
    }

    /// Connections handed over since the last look (main thread).
    pub fn take_moved(&self) -> u64 {
        // A plain load first: almost always nothing moved.
        match self.moved.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.moved.swap(0, Ordering::Relaxed),
        }
    }

    /// One tick of the helper: once the same call has run `after`, hand
    /// over what was lent (at each tick from then on: a connection the
    /// pair had no room for tries again), except the connections `held`
    /// says still have a response to send. Whether a call runs (the
    /// helper must not sleep then).
    pub fn tick(&self, watch: &mut Watch, held: impl Fn(usize) -> bool) -> bool {
        let mut lent = self.lock();
        if !lent.calling {
            *watch = Watch::default();
            return false;
        }
        let calls = lent.calls;
        let now = Instant::now();
        let since = match watch.0 {
            Some((seen, since)) if seen == calls => since,
            _ => {
                watch.0 = Some((calls, now));
                now
            }
        };
        if now.duration_since(since) >= self.after && !sys::stop_requested() && another_worker_free(self.slot) {
            let moved = hand_over(&self.channel, &self.registry, &mut lent.conns, &held);
            self.moved.fetch_add(moved, Ordering::Relaxed);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// A connection over a unix socket pair: ours, and the client's end.
    fn conn(state: ConnState, stage: Stage, buf: &[u8]) -> (Conn, UnixStream) {
        let (ours, client) = UnixStream::pair().unwrap();
        let mut conn = Conn::new(Stream::Unix(ours), Peer::Unix, stage, 1);
        conn.state = state;
        conn.buf = buf.to_vec();
        (conn, client)
    }

    #[test]
    fn a_connection_arrives_whole_with_its_bytes_stage_and_age() {
        let channel = Channel::new().unwrap();
        let since = Instant::now() - Duration::from_millis(300);
        let client_addr: std::net::SocketAddr = "203.0.113.7:4000".parse().unwrap();
        let (sent, mut client) = conn(ConnState::Idle { since }, Stage::Requests(Peer::Tcp(client_addr)), b"GET / HTTP/1.1\r\n");
        assert!(channel.send(&sent));
        drop(sent);
        let got = channel.receive(&mut vec![0; MAX_MESSAGE]).unwrap().expect("a connection");
        assert_eq!((got.listener, got.peer, got.stage), (1, Peer::Unix, Stage::Requests(Peer::Tcp(client_addr))));
        assert_eq!(got.buf, b"GET / HTTP/1.1\r\n");
        let ConnState::Idle { since: got_since } = got.state else { panic!("{:?}", got.state) };
        let age = got_since.elapsed();
        assert!(age >= Duration::from_millis(300) && age < Duration::from_secs(5), "{age:?}");
        // The same socket: what the client sends arrives here, and back.
        client.write_all(b"Host: x\r\n").unwrap();
        let mut bytes = [0u8; 9];
        (&*got.stream).read_exact(&mut bytes).unwrap();
        assert_eq!(&bytes, b"Host: x\r\n");
        assert!(channel.receive(&mut vec![0; MAX_MESSAGE]).unwrap().is_none(), "one message, one connection");
    }

    #[test]
    fn what_must_stay_stays() {
        let channel = Channel::new().unwrap();
        let now = Instant::now();
        let (lingering, _c1) = conn(ConnState::Lingering { since: now, last_input: now }, Stage::ProxyHeader, b"");
        assert!(!channel.send(&lingering));
        let (mut unsent, _c2) = conn(ConnState::Idle { since: now }, Stage::ProxyHeader, b"");
        unsent.unsent = b"HTTP/1.1 200 OK\r\n".to_vec();
        assert!(!channel.send(&unsent));
        let (big, _c3) = conn(ConnState::ReadingHead { since: now }, Stage::ProxyHeader, &vec![b'x'; MAX_CARRIED + 1]);
        assert!(!channel.send(&big));
        // A PROXY header still due, and a head part read, do go.
        let (proxy, _c4) = conn(ConnState::ReadingHead { since: now }, Stage::ProxyHeader, b"PROXY TCP4 ");
        assert!(channel.send(&proxy));
        let got = channel.receive(&mut vec![0; MAX_MESSAGE]).unwrap().unwrap();
        assert_eq!((got.stage, got.buf.as_slice()), (Stage::ProxyHeader, b"PROXY TCP4 ".as_slice()));
        assert!(matches!(got.state, ConnState::ReadingHead { .. }));
    }

    #[test]
    fn hand_over_moves_all_but_the_kept_and_counts_them() {
        let channel = Channel::new().unwrap();
        let poll = mio::Poll::new().unwrap();
        let now = Instant::now();
        let mut conns = HashMap::new();
        let mut clients = Vec::new();
        for token in 10..14 {
            let (c, client) = conn(ConnState::Idle { since: now }, Stage::ProxyHeader, b"");
            conns.insert(token, c);
            clients.push(client);
        }
        assert_eq!(hand_over(&channel, poll.registry(), &mut conns, |t| t == 12), 3);
        assert_eq!(conns.keys().copied().collect::<Vec<_>>(), vec![12]);
        let mut received = 0;
        while channel.receive(&mut vec![0; MAX_MESSAGE]).unwrap().is_some() {
            received += 1;
        }
        assert_eq!(received, 3);
    }
}

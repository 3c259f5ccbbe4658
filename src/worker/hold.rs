//! Responses held back for the end of the worker's turn (`--threads 1`).
//!
//! A worker that finds several connections ready serves their requests
//! back to back and sends the small, complete responses after the last
//! one, so the app's code and data stay in the CPU caches across its calls
//! and the kernel's network path stays warm across the sends. A held
//! response must never wait on an unrelated slow request, though: the
//! worker's main thread is inside the app then and cannot send it. So a
//! parked connection's held bytes sit in a [`Held`] list that a small
//! flusher thread empties once the oldest of them has waited
//! [`HOLD_TIME`]; the main thread takes a connection's bytes back before
//! it touches that connection again, and sends the rest after its turn.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::handoff::{Lender, Watch};
use crate::net::Stream;

/// The longest a finished response waits while the worker serves others.
pub const HOLD_TIME: Duration = Duration::from_millis(1);
/// Idle flusher ticks after which it sleeps until the next hold.
const IDLE_TICKS: u32 = 100;

/// One parked connection's held bytes.
pub struct HeldResponse {
    pub token: usize,
    pub stream: Arc<Stream>,
    pub bytes: Vec<u8>,
}

pub struct Held {
    list: Mutex<Vec<HeldResponse>>,
    /// When the oldest held response was put here (ns since `epoch`, plus
    /// one); 0 when none is.
    since: AtomicU64,
    epoch: Instant,
    /// The flusher sleeps until woken (no hold for a while).
    flusher_asleep: AtomicBool,
    flusher: Mutex<Option<Thread>>,
    /// The parked connections lent during app calls, which the same
    /// thread hands over when a call runs long (see `handoff`).
    lender: Option<Arc<Lender>>,
}

impl Held {
    /// The list and its flusher thread (which also watches `lender`).
    pub fn start(lender: Option<Arc<Lender>>) -> io::Result<Arc<Held>> {
        let held = Arc::new(Held {
            list: Mutex::new(Vec::new()),
            since: AtomicU64::new(0),
            epoch: Instant::now(),
            flusher_asleep: AtomicBool::new(false),
            flusher: Mutex::new(None),
            lender,
        });
        let for_thread = held.clone();
        let handle = std::thread::Builder::new().name("rwsgi-flush".into()).stack_size(64 * 1024).spawn(move || {
            // Signals are the main thread's (they interrupt its poll).
            let _ = crate::sys::block_worker_signals_in_thread();
            for_thread.run_flusher();
        })?;
        *held.flusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.thread().clone());
        Ok(held)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<HeldResponse>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Hold `bytes` for the parked connection `token`.
    pub fn hold(&self, token: usize, stream: &Arc<Stream>, bytes: Vec<u8>) {
        self.lock().push(HeldResponse { token, stream: stream.clone(), bytes });
        if self.since.load(Ordering::Relaxed) == 0 {
            self.since.store(self.now(), Ordering::SeqCst);
        }
        // SeqCst with the flusher's flag-then-check: either it sees `since`
        // or this sees its flag.
        self.wake_flusher();
    }

    /// Wake the flusher if it sleeps (something was held, or an app call
    /// began that it must watch). A plain load first: it is awake
    /// whenever the worker is busy.
    pub fn wake_flusher(&self) {
        if self.flusher_asleep.load(Ordering::SeqCst) && self.flusher_asleep.swap(false, Ordering::SeqCst) {
            if let Some(t) = &*self.flusher.lock().unwrap_or_else(|p| p.into_inner()) {
                t.unpark();
            }
        }
    }

    /// Whether a response is still held for `token`.
    fn holds(&self, token: usize) -> bool {
        self.since.load(Ordering::Acquire) != 0 && self.lock().iter().any(|h| h.token == token)
    }

    /// Take back what is still held for `token` (before the connection is
    /// written to, read from, or closed).
    pub fn take(&self, token: usize) -> Option<Vec<u8>> {
        if self.since.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut list = self.lock();
        let i = list.iter().position(|h| h.token == token)?;
        let bytes = list.remove(i).bytes;
        if list.is_empty() {
            self.since.store(0, Ordering::Release);
        }
        Some(bytes)
    }

    /// Take everything still held, into `out`.
    pub fn take_all(&self, out: &mut Vec<HeldResponse>) {
        if self.since.load(Ordering::Acquire) == 0 {
            return;
        }
        out.append(&mut self.lock());
        self.since.store(0, Ordering::Release);
    }

    /// The flusher: every [`HOLD_TIME`], send what has waited that long,
    /// as far as the sockets take it without waiting (the rest stays for
    /// the main thread, which may wait), and let the lender hand over the
    /// parked connections of a long app call. It sleeps when nothing has
    /// been held, and no call has run, for a while.
    fn run_flusher(&self) {
        let mut idle = 0;
        let mut watch = Watch::default();
        loop {
            std::thread::park_timeout(HOLD_TIME);
            self.flush_due();
            let calling = self.lender.as_ref().is_some_and(|l| l.tick(&mut watch, |token| self.holds(token)));
            if self.since.load(Ordering::Acquire) != 0 || calling {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle >= IDLE_TICKS {
                idle = 0;
                self.flusher_asleep.store(true, Ordering::SeqCst);
                // A hold or a call that came before the flag went up is
                // seen here: look once more before sleeping.
                if self.since.load(Ordering::SeqCst) == 0 && !self.lender.as_ref().is_some_and(|l| l.busy()) {
                    std::thread::park();
                }
                self.flusher_asleep.store(false, Ordering::Release);
            }
        }
    }

    /// Send the held responses once the oldest has waited [`HOLD_TIME`].
    fn flush_due(&self) {
        let since = self.since.load(Ordering::Acquire);
        if since == 0 || self.now().saturating_sub(since) < HOLD_TIME.as_nanos() as u64 {
            return;
        }
        let mut list = self.lock();
        list.retain_mut(|h| !send_some(h));
        let next = if list.is_empty() { 0 } else { self.now() };
        self.since.store(next, Ordering::Release);
    }
}

/// Send what the socket takes at once; true (and `bytes` empty) when all
/// of it went out. A failed connection keeps its bytes: the main thread
/// finds out when it sends them.
pub fn send_some(h: &mut HeldResponse) -> bool {
    loop {
        match (&*h.stream).write(&h.bytes) {
            Ok(n) if n == h.bytes.len() => {
                h.bytes.clear();
                return true;
            }
            Ok(n) => {
                h.bytes.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return false,
        }
    }
}

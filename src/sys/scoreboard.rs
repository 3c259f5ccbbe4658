//! The scoreboard: one shared anonymous mapping, created by the master
//! before any fork, that every worker inherits. One slot per worker
//! (pid, state, last heartbeat, requests served, start of the current
//! request, the counts of `tally`) plus one boot-error area where the first worker that fails to
//! load the application leaves its traceback for the master to print once.
//!
//! Every field is an atomic, so master and workers share it without locks;
//! the one byte buffer is written by a single process that won a
//! compare-and-swap, and published with a release store of its length.

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

use super::tally::Tally;

/// Most workers one scoreboard can track.
pub const MAX_SLOTS: usize = 1024;
/// Most bytes of a boot-error traceback kept.
const BOOT_ERROR_LEN: usize = 64 * 1024;
/// Most bytes of a request's method and path a slot keeps.
pub const REQUEST_LINE_LEN: usize = 128;

/// A worker's life cycle, as its slot shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SlotState {
    /// No worker has the slot.
    Free = 0,
    /// Forked, not yet serving (the app is being imported).
    Booting = 1,
    /// Serving, with no request in hand.
    Idle = 2,
    /// Serving a request.
    Busy = 3,
    /// Finishing its requests before it exits; not counted as serving.
    Stopping = 4,
}

impl SlotState {
    fn from_u32(v: u32) -> SlotState {
        match v {
            1 => SlotState::Booting,
            2 => SlotState::Idle,
            3 => SlotState::Busy,
            4 => SlotState::Stopping,
            _ => SlotState::Free,
        }
    }
}

/// Why a worker stopped itself, as it tells the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Recycle {
    /// It served --max-requests.
    MaxRequests = 1,
    /// It grew past --max-worker-memory.
    Memory = 2,
}

#[repr(C)]
struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    /// Monotonic milliseconds of the last sign of life.
    last_beat_ms: AtomicU64,
    requests: AtomicU64,
    /// Monotonic milliseconds the current request started at; 0 if idle.
    request_start_ms: AtomicU64,
    /// The latest request's method and path: a sequence lock (odd while
    /// the worker writes), the length, and the bytes packed 8 to a word.
    line_seq: AtomicU64,
    line_len: AtomicU32,
    line: [AtomicU64; REQUEST_LINE_LEN / 8],
    /// Its counts for the metrics (see `tally`).
    tally: Tally,
    /// Why it stopped itself ([`Recycle`]; 0: it did not).
    recycle: AtomicU32,
    /// With request threads: 1 while one is free (the worker can take a
    /// connection handed over though busy).
    spare: AtomicU32,
}

impl Slot {
    /// Mark the worker busy or idle, unless it is stopping: a stopping
    /// worker stays marked so while it finishes its last requests (the
    /// master starts its replacement meanwhile).
    fn set_busy_or_idle(&self, state: SlotState) {
        let _ = self.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s != SlotState::Stopping as u32).then_some(state as u32)
        });
    }
}

#[repr(C)]
struct Board {
    /// Set by the first worker that finishes booting: the service has run.
    booted_once: AtomicU32,
    /// 1 once the master began a final stop in which the sockets are to
    /// stop listening (see [`Scoreboard::set_final_stop`]).
    final_stop: AtomicU32,
    boot_error_claimed: AtomicU32,
    boot_error_len: AtomicU32,
    boot_error: [u8; BOOT_ERROR_LEN],
    slots: [Slot; MAX_SLOTS],
}

/// Handle on the shared mapping. Cheap to copy into a forked child: the
/// child's copy points at the same shared pages.
pub struct Scoreboard {
    board: NonNull<Board>,
}

// SAFETY: all shared state is atomics, and the boot-error bytes are written
// by one process only (the CAS winner) before its length is published.
unsafe impl Send for Scoreboard {}
// SAFETY: as for Send: every access through `&Scoreboard` is atomic or
// follows the single-writer protocol.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Map a zeroed scoreboard (all slots `Free`).
    pub fn new() -> nix::Result<Scoreboard> {
        let len = NonZeroUsize::new(std::mem::size_of::<Board>()).expect("Board is not zero-sized");
        // SAFETY: a fresh anonymous shared mapping aliases nothing; the
        // kernel zero-fills it, and all-zero is a valid `Board` (atomics and
        // bytes).
        let ptr = unsafe {
            mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED)?
        };
        Ok(Scoreboard { board: ptr.cast() })
    }

    fn board(&self) -> &Board {
        // SAFETY: the mapping lives as long as `self` and is only accessed
        // through atomics or the single-writer protocol above.
        unsafe { self.board.as_ref() }
    }

    fn slot(&self, index: usize) -> &Slot {
        &self.board().slots[index]
    }

    /// Claim slot `index` for a new worker (master, after fork).
    pub fn assign(&self, index: usize, pid: i32) {
        let slot = self.slot(index);
        slot.requests.store(0, Ordering::Relaxed);
        slot.request_start_ms.store(0, Ordering::Relaxed);
        slot.line_seq.store(0, Ordering::Relaxed);
        slot.line_len.store(0, Ordering::Relaxed);
        slot.tally.reset();
        slot.recycle.store(0, Ordering::Relaxed);
        slot.spare.store(0, Ordering::Relaxed);
        slot.last_beat_ms.store(now_ms(), Ordering::Relaxed);
        slot.state.store(SlotState::Booting as u32, Ordering::Relaxed);
        slot.pid.store(pid, Ordering::Release);
    }

    /// Record the pid of the worker forked for slot `index` (master). The
    /// slot was assigned before the fork, so a worker that boots fast
    /// cannot have its state overwritten.
    pub fn set_pid(&self, index: usize, pid: i32) {
        self.slot(index).pid.store(pid, Ordering::Release);
    }

    /// Mark slot `index` free (master, after reaping its worker).
    pub fn release(&self, index: usize) {
        let slot = self.slot(index);
        slot.pid.store(0, Ordering::Relaxed);
        slot.state.store(SlotState::Free as u32, Ordering::Release);
    }

    /// A worker's state change; also a heartbeat.
    pub fn set_state(&self, index: usize, state: SlotState) {
        if state == SlotState::Idle {
            self.board().booted_once.store(1, Ordering::Release);
        }
        let slot = self.slot(index);
        slot.state.store(state as u32, Ordering::Release);
        slot.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// What the worker in slot `index` is doing.
    pub fn state(&self, index: usize) -> SlotState {
        SlotState::from_u32(self.slot(index).state.load(Ordering::Acquire))
    }

    /// A worker is alive and well.
    pub fn beat(&self, index: usize) {
        self.slot(index).last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds the request in slot `index` has been running, if any.
    pub fn request_running_ms(&self, index: usize) -> Option<u64> {
        let start = self.slot(index).request_start_ms.load(Ordering::Relaxed);
        (start != 0).then(|| now_ms().saturating_sub(start))
    }

    /// Where this worker's heartbeat goes, for `sys::beat`.
    pub(crate) fn beat_cell(&self, index: usize) -> &AtomicU64 {
        &self.slot(index).last_beat_ms
    }

    /// Milliseconds since slot `index` last beat.
    pub fn silent_for_ms(&self, index: usize) -> u64 {
        now_ms().saturating_sub(self.slot(index).last_beat_ms.load(Ordering::Relaxed))
    }

    /// A request started in worker `index`.
    pub fn request_started(&self, index: usize) {
        let slot = self.slot(index);
        let now = now_ms();
        slot.request_start_ms.store(now, Ordering::Relaxed);
        slot.last_beat_ms.store(now, Ordering::Relaxed);
        slot.set_busy_or_idle(SlotState::Busy);
    }

    /// A request finished in worker `index`.
    pub fn request_finished(&self, index: usize) {
        let slot = self.slot(index);
        slot.requests.fetch_add(1, Ordering::Relaxed);
        slot.request_start_ms.store(0, Ordering::Relaxed);
        slot.last_beat_ms.store(now_ms(), Ordering::Relaxed);
        slot.set_busy_or_idle(SlotState::Idle);
    }

    /// Set slot `index` from a worker's request threads: its heartbeat is
    /// the last progress of its slowest busy thread, its request start
    /// that of its oldest request (0: none), its state busy or idle.
    pub fn set_threads_progress(&self, index: usize, beat_ms: u64, oldest_start_ms: u64) {
        let slot = self.slot(index);
        slot.last_beat_ms.store(beat_ms, Ordering::Relaxed);
        slot.request_start_ms.store(oldest_start_ms, Ordering::Relaxed);
        slot.set_busy_or_idle(if oldest_start_ms == 0 { SlotState::Idle } else { SlotState::Busy });
    }

    /// Worker `index` starts serving `method` `path`: kept (cut to
    /// [`REQUEST_LINE_LEN`] bytes) for the master to name the request a
    /// worker died in. Plain stores, no lock: a reader that races with it
    /// sees the sequence change and reads nothing.
    pub fn note_request_line(&self, index: usize, method: &str, path: &str) {
        let slot = self.slot(index);
        let mut bytes = [0u8; REQUEST_LINE_LEN];
        let m = method.len().min(REQUEST_LINE_LEN - 1);
        bytes[..m].copy_from_slice(&method.as_bytes()[..m]);
        bytes[m] = b' ';
        let p = path.len().min(REQUEST_LINE_LEN - m - 1);
        bytes[m + 1..m + 1 + p].copy_from_slice(&path.as_bytes()[..p]);
        let len = m + 1 + p;
        // Request threads of one worker share the slot: the first to make
        // the sequence odd writes; one that finds it odd leaves the line
        // being written to stand.
        let seq = slot.line_seq.load(Ordering::Relaxed);
        if seq % 2 == 1 || slot.line_seq.compare_exchange(seq, seq + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        std::sync::atomic::fence(Ordering::Release);
        for (word, chunk) in slot.line.iter().zip(bytes[..len.next_multiple_of(8)].chunks_exact(8)) {
            word.store(u64::from_le_bytes(chunk.try_into().expect("chunks of 8")), Ordering::Relaxed);
        }
        slot.line_len.store(len as u32, Ordering::Relaxed);
        slot.line_seq.store(seq + 2, Ordering::Release);
    }

    /// The method and path worker `index` last started serving; `None`
    /// before its first request (or when it was being written just now).
    pub fn request_line(&self, index: usize) -> Option<String> {
        let slot = self.slot(index);
        let seq = slot.line_seq.load(Ordering::Acquire);
        if seq == 0 || seq % 2 == 1 {
            return None;
        }
        let len = (slot.line_len.load(Ordering::Relaxed) as usize).min(REQUEST_LINE_LEN);
        let mut bytes = Vec::with_capacity(REQUEST_LINE_LEN);
        for word in &slot.line {
            bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        std::sync::atomic::fence(Ordering::Acquire);
        (slot.line_seq.load(Ordering::Relaxed) == seq).then(|| String::from_utf8_lossy(&bytes[..len]).into_owned())
    }

    /// Whether worker `index` has started serving a request.
    pub fn started_serving(&self, index: usize) -> bool {
        self.slot(index).line_seq.load(Ordering::Acquire) != 0
    }

    /// Count a request finished by one of worker `index`'s threads.
    pub fn count_request(&self, index: usize) {
        self.slot(index).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Worker `index` (with request threads) has a free one, or not.
    pub fn set_spare_thread(&self, index: usize, spare: bool) {
        self.slot(index).spare.store(u32::from(spare), Ordering::Relaxed);
    }

    /// Whether a worker other than `index` could serve a connection now:
    /// idle, or busy with a request thread free.
    pub fn another_worker_free(&self, index: usize) -> bool {
        self.board().slots.iter().enumerate().any(|(i, slot)| {
            i != index
                && slot.pid.load(Ordering::Relaxed) != 0
                && match SlotState::from_u32(slot.state.load(Ordering::Relaxed)) {
                    SlotState::Idle => true,
                    SlotState::Busy => slot.spare.load(Ordering::Relaxed) != 0,
                    SlotState::Free | SlotState::Booting | SlotState::Stopping => false,
                }
        })
    }

    /// A final stop began, whose sockets stop listening once every worker
    /// has taken what was queued on them: the last worker to stop does it
    /// at once (the master, at its next turn, otherwise), since a
    /// connection queued after its last accept would be reset.
    pub fn set_final_stop(&self) {
        self.board().final_stop.store(1, Ordering::SeqCst);
    }

    /// Whether the worker in slot `index`, now stopping, is the last of a
    /// final stop: every other slot is free or stopping too.
    pub fn last_to_stop(&self, index: usize) -> bool {
        // SeqCst, with the Stopping store before it: of two workers that
        // stop at once, at least one sees the other's.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.board().final_stop.load(Ordering::SeqCst) == 1
            && self.board().slots.iter().enumerate().all(|(i, slot)| {
                i == index
                    || matches!(SlotState::from_u32(slot.state.load(Ordering::SeqCst)), SlotState::Free | SlotState::Stopping)
            })
    }

    /// Worker `index` stops itself, for this reason.
    pub fn note_recycle(&self, index: usize, why: Recycle) {
        self.slot(index).recycle.store(why as u32, Ordering::Relaxed);
    }

    /// Why worker `index` stopped itself, if it said.
    pub fn recycle(&self, index: usize) -> Option<Recycle> {
        match self.slot(index).recycle.load(Ordering::Relaxed) {
            1 => Some(Recycle::MaxRequests),
            2 => Some(Recycle::Memory),
            _ => None,
        }
    }

    /// Worker `index`'s counts for the metrics.
    pub fn tally(&self, index: usize) -> &Tally {
        &self.slot(index).tally
    }

    /// Requests the worker in slot `index` has finished.
    pub fn requests(&self, index: usize) -> u64 {
        self.slot(index).requests.load(Ordering::Relaxed)
    }

    /// Whether any worker has ever finished booting (the app loads, or
    /// did): from then on, a worker that cannot load it does not stop the
    /// service.
    pub fn booted_once(&self) -> bool {
        self.board().booted_once.load(Ordering::Acquire) == 1
    }

    /// Leave a boot error for the master. Only the first caller across all
    /// processes writes; returns whether this call was it.
    pub fn report_boot_error(&self, text: &str) -> bool {
        let board = self.board();
        if board.boot_error_claimed.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        let bytes = text.as_bytes();
        let n = bytes.len().min(BOOT_ERROR_LEN);
        // SAFETY: this process won the CAS, so it is the only writer of the
        // buffer, and no reader looks before the length is published below.
        unsafe {
            let dst = std::ptr::addr_of!(board.boot_error) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n);
        }
        board.boot_error_len.store(n as u32, Ordering::Release);
        true
    }

    /// Forget a reported boot error, so the next failure (of a reload's
    /// workers) is reported too.
    pub fn clear_boot_error(&self) {
        let board = self.board();
        board.boot_error_len.store(0, Ordering::Release);
        board.boot_error_claimed.store(0, Ordering::Release);
    }

    /// The boot error a worker left, if any.
    pub fn boot_error(&self) -> Option<String> {
        let board = self.board();
        let n = board.boot_error_len.load(Ordering::Acquire) as usize;
        (n > 0).then(|| String::from_utf8_lossy(&board.boot_error[..n]).into_owned())
    }
}

/// The worker's scoreboard, for a thread of it that holds no reference
/// (the hand-off helper); set once at boot.
static WORKER_BOARD: std::sync::atomic::AtomicPtr<Board> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

impl Scoreboard {
    /// This process is a worker on `self` (after fork): see [`worker_board`].
    pub fn set_worker_board(&self) {
        WORKER_BOARD.store(self.board.as_ptr(), Ordering::Release);
    }
}

/// The scoreboard of this worker process, as a borrowed handle.
pub fn worker_board() -> Option<WorkerBoard> {
    NonNull::new(WORKER_BOARD.load(Ordering::Acquire)).map(|board| WorkerBoard(std::mem::ManuallyDrop::new(Scoreboard { board })))
}

/// A handle on the worker's scoreboard that never unmaps it.
pub struct WorkerBoard(std::mem::ManuallyDrop<Scoreboard>);

impl std::ops::Deref for WorkerBoard {
    type Target = Scoreboard;
    fn deref(&self) -> &Scoreboard {
        // The mapping is never unmapped in a worker: its owner (the
        // master's, inherited at fork) lives until the process exits.
        &self.0
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with exactly this size
        // and nothing borrows it past `self`.
        unsafe {
            let _ = munmap(self.board.cast(), std::mem::size_of::<Board>());
        }
    }
}

/// Milliseconds on the system-wide monotonic clock: comparable between
/// the master and the workers, and immune to wall-clock steps.
/// The coarse clock (a few ms of resolution) is plenty for heartbeats
/// and timeouts counted in seconds, and the cheapest to read.
pub(crate) fn now_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map_or(0, |t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_kept_cut_and_read_back() {
        let board = Scoreboard::new().unwrap();
        board.assign(5, 1);
        assert!(!board.started_serving(5));
        assert_eq!(board.request_line(5), None);
        board.note_request_line(5, "GET", "/die");
        assert!(board.started_serving(5));
        assert_eq!(board.request_line(5).as_deref(), Some("GET /die"));
        let long = "/x".repeat(100);
        board.note_request_line(5, "POST", &long);
        let line = board.request_line(5).unwrap();
        assert_eq!(line.len(), REQUEST_LINE_LEN);
        assert!(line.starts_with("POST /x/x"));
        board.note_request_line(5, "GET", "/");
        assert_eq!(board.request_line(5).as_deref(), Some("GET /"));
        board.assign(5, 2);
        assert!(!board.started_serving(5), "a new worker starts afresh");
    }

    #[test]
    fn another_worker_is_free_when_idle_or_with_a_spare_thread() {
        let board = Scoreboard::new().unwrap();
        board.assign(0, 10);
        board.assign(1, 11);
        assert!(!board.another_worker_free(0), "booting is not free");
        board.set_state(1, SlotState::Idle);
        assert!(board.another_worker_free(0) && !board.another_worker_free(1));
        board.request_started(1);
        assert!(!board.another_worker_free(0), "busy");
        board.set_spare_thread(1, true);
        assert!(board.another_worker_free(0), "busy with a thread free");
        board.set_state(1, SlotState::Stopping);
        assert!(!board.another_worker_free(0), "stopping");
        board.release(1);
        assert!(!board.another_worker_free(0));
    }

    #[test]
    fn slots_and_boot_error() {
        let board = Scoreboard::new().unwrap();
        assert_eq!(board.state(3), SlotState::Free);
        board.assign(3, 1234);
        assert_eq!(board.state(3), SlotState::Booting);
        board.request_started(3);
        assert_eq!(board.state(3), SlotState::Busy);
        board.request_finished(3);
        assert_eq!((board.state(3), board.requests(3)), (SlotState::Idle, 1));
        assert!(board.silent_for_ms(3) < 60_000);
        assert_eq!(board.boot_error(), None);
        assert!(board.report_boot_error("first"));
        assert!(!board.report_boot_error("second"));
        assert_eq!(board.boot_error().as_deref(), Some("first"));
        board.release(3);
        assert_eq!(board.state(3), SlotState::Free);
    }
}

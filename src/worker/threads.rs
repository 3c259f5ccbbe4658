//! Request threads (`--threads N`, N > 1): up to N requests of one worker
//! run at once, on N threads sharing its interpreter.
//!
//! Whose state is what:
//! - The worker's main thread (the poller) alone owns the poll, the
//!   listeners and every parked connection: accepting, reading request
//!   heads, keep-alive, lingering and every deadline stay single-threaded,
//!   exactly as with one thread. It never calls the application.
//! - A connection whose request head is complete moves, with the request,
//!   into the job queue; one request thread takes it and alone touches it
//!   until it hands it back through the done list and wakes the poller.
//!   A connection is never in two places: moving it is the hand-over.
//! - Shared by all: the [`Handler`] (see there), the job queue and the done
//!   list (a lock each), the poller's sleep flag (an atomic), and the
//!   progress stamps (atomics: each written by its own thread, read by
//!   the poller).
//!
//! Thread switches are what short requests cost here, so they are few:
//! - a submit wakes a thread only if one waits that no earlier submit has
//!   woken already: a busy thread takes the next job itself, and a woken
//!   one takes every job queued by the time it runs;
//! - a finished request wakes the poller only while it sleeps in its
//!   poll, and once per sleep;
//! - request threads run under SCHED_BATCH, so a woken thread does not
//!   preempt the poller before it has queued every request of its turn.
//!   Threads the application starts from a request thread inherit the
//!   policy (same priority and CPU share; only wake-up preemption differs).
//!
//! The heartbeat stays honest: each thread's socket waits beat its own
//! stamp, and the poller reports the worker's heartbeat as that of its
//! slowest busy thread, so a thread stuck in application code gets the
//! worker killed (and every thread's stack logged) while the others are
//! busy. The request start it reports is that of the oldest request, for
//! `--request-timeout`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use pyo3::prelude::*;

use super::conn::Conn;
use super::handler::{After, Handler};
use crate::sys;
use crate::wire::Incoming;

/// A request for a thread: the connection and its decoded request.
pub(super) struct Job {
    pub token: usize,
    pub conn: Conn,
    pub incoming: Incoming,
    /// The worker allows keep-alive for this request.
    pub keep_alive_allowed: bool,
}

/// A request a thread has finished: the connection goes back to the poller.
pub(super) struct Done {
    pub token: usize,
    pub conn: Conn,
    /// What the connection is good for now.
    pub after: After,
}

/// One request thread's progress, in monotonic milliseconds.
#[derive(Default)]
struct Stamp {
    /// Its last sign of progress (a socket read or write, a request start).
    progress_ms: AtomicU64,
    /// When its current request started; 0 while it has none.
    started_ms: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// No more jobs will come: threads leave once the queue is empty.
    closed: bool,
    /// Threads waiting for a job.
    idle: usize,
    /// Of those, the ones already woken that have not run yet: a burst of
    /// jobs wakes each waiting thread once, not once per job (a wake is a
    /// system call whether or not anyone is left to wake).
    woken: usize,
}

/// The job queue, the done list and the threads' stamps.
pub(super) struct Pool {
    queue: Mutex<Queue>,
    job_ready: Condvar,
    done: Mutex<Vec<Done>>,
    /// The poller sleeps in its poll, or is about to: the next finished
    /// request wakes it (once; the flag is cleared by whoever wakes it,
    /// and by the poller as soon as its poll returns).
    poller_asleep: AtomicBool,
    /// Wakes the poller when a request is done.
    waker: mio::Waker,
    /// Leaked once per worker process: a thread's heartbeat cell must
    /// outlive the thread-local that points at it.
    stamps: &'static [Stamp],
}

impl Pool {
    pub fn new(waker: mio::Waker, threads: usize) -> Pool {
        let stamps: Vec<Stamp> = (0..threads).map(|_| Stamp::default()).collect();
        Pool {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), closed: false, idle: 0, woken: 0 }),
            job_ready: Condvar::new(),
            done: Mutex::new(Vec::new()),
            poller_asleep: AtomicBool::new(false),
            waker,
            stamps: Box::leak(stamps.into_boxed_slice()),
        }
    }

    /// Queue a job. Only a waiting thread not yet woken needs waking: a
    /// busy one takes the job itself when it is done with its own.
    pub fn submit(&self, job: Job) {
        let mut queue = lock(&self.queue);
        queue.jobs.push_back(job);
        let wake = queue.idle > queue.woken;
        if wake {
            queue.woken += 1;
        }
        drop(queue);
        if wake {
            self.job_ready.notify_one();
        }
    }

    /// Whether a thread waits for a job that no queued job has claimed.
    pub fn has_idle_thread(&self) -> bool {
        let queue = lock(&self.queue);
        queue.idle > queue.woken
    }

    /// The jobs no thread has taken yet, oldest first.
    pub fn take_queued(&self) -> Vec<Job> {
        let mut queue = lock(&self.queue);
        // Threads woken for them find the queue empty and wait again.
        queue.jobs.drain(..).collect()
    }

    /// Move the finished requests into `out` (an empty list).
    pub fn take_done(&self, out: &mut Vec<Done>) {
        std::mem::swap(out, &mut *lock(&self.done));
    }

    /// The poller is about to sleep in its poll: false when a finished
    /// request already waits (poll without sleeping then). From here until
    /// [`Pool::poller_awake`], the next finished request wakes it. The flag
    /// is raised before the list is looked at, and a thread pushes before
    /// it lowers the flag: one of the two always sees the other.
    pub fn poller_may_sleep(&self) -> bool {
        self.poller_asleep.store(true, Ordering::SeqCst);
        if lock(&self.done).is_empty() {
            return true;
        }
        self.poller_asleep.store(false, Ordering::SeqCst);
        false
    }

    /// The poller's poll returned: finished requests need not wake it
    /// while it works through its turn (it takes them before it sleeps).
    pub fn poller_awake(&self) {
        self.poller_asleep.store(false, Ordering::SeqCst);
    }

    /// No more jobs: each thread finishes what is queued, then returns.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.job_ready.notify_all();
    }

    /// The worker's heartbeat (the last progress of its slowest busy
    /// thread, or `now` when none is busy) and the start of its oldest
    /// request (0 when none).
    pub fn progress(&self, now: u64) -> (u64, u64) {
        let (mut beat, mut oldest) = (now, u64::MAX);
        for s in self.stamps {
            let started = s.started_ms.load(Ordering::Acquire);
            if started != 0 {
                oldest = oldest.min(started);
                beat = beat.min(s.progress_ms.load(Ordering::Relaxed));
            }
        }
        (beat, if oldest == u64::MAX { 0 } else { oldest })
    }

    /// The body of request thread `index`: serve jobs until the pool closes.
    pub fn run_thread(&self, index: usize, handler: &Handler<'_>) {
        if let Err(e) = sys::block_worker_signals_in_thread() {
            log::warn!("request thread {index}: cannot block signals: {e}");
        }
        if let Err(e) = sys::set_thread_batch_scheduling() {
            log::debug!("request thread {index}: cannot use SCHED_BATCH: {e}");
        }
        let stamp = &self.stamps[index];
        sys::set_thread_heartbeat(&stamp.progress_ms);
        // Attached once and detached at once: the thread keeps one Python
        // thread state for its life, and holds the GIL only inside the
        // handler's own attach.
        Python::attach(|py| {
            py.detach(|| {
                while let Some(job) = self.next_job() {
                    let now = sys::now_ms();
                    stamp.progress_ms.store(now, Ordering::Relaxed);
                    // Release: whoever sees the start sees the progress too.
                    stamp.started_ms.store(now, Ordering::Release);
                    let Job { token, mut conn, incoming, keep_alive_allowed } = job;
                    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        handler.serve(&mut conn, incoming, keep_alive_allowed, false)
                    }));
                    stamp.started_ms.store(0, Ordering::Release);
                    handler.board.count_request(handler.slot);
                    // A bug in rwsgi must not lose the connection's slot in
                    // the poller: the connection goes back, to be closed.
                    let after = served.unwrap_or_else(|_| {
                        log::error!("request thread {index} panicked serving a request; closing its connection");
                        After::Linger
                    });
                    lock(&self.done).push(Done { token, conn, after });
                    if self.poller_asleep.swap(false, Ordering::SeqCst) {
                        if let Err(e) = self.waker.wake() {
                            log::error!("request thread {index}: cannot wake the poller: {e}");
                        }
                    }
                }
            });
        });
    }

    /// The next job, waiting for one if need be.
    fn next_job(&self) -> Option<Job> {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue.idle += 1;
            queue = self.job_ready.wait(queue).unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.idle -= 1;
            // Woken, or spuriously awake: either way no longer owed a wake.
            queue.woken = queue.woken.saturating_sub(1);
        }
    }
}

/// Lock, even after a thread panicked holding the lock: the queues stay
/// consistent (a push or a pop is all that is done under them).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

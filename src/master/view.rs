//! What the master shows of the server, in one place: `/metrics`, the
//! control socket's `show` and `rwsgi top` all read this view. It comes
//! from the scoreboard (what the workers count), `/proc` (each live
//! worker's memory and CPU time) and the master's own counts (exits,
//! reloads, what the workers gone had counted): nothing here runs on a
//! worker's request path.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::time::Instant;

use nix::unistd::Pid;

use super::exit::CAUSES;
use super::{Master, WorkerEntry};
use crate::sys::{self, SlotState, Totals};

/// What the master counts itself.
#[derive(Default)]
pub(super) struct Counts {
    /// When the master started.
    pub since: Option<Instant>,
    /// Requests served by workers that are gone.
    pub requests_gone: u64,
    /// What workers that are gone had tallied.
    pub tally_gone: Totals,
    /// CPU seconds of workers that are gone.
    pub cpu_gone: f64,
    /// Worker exits by cause.
    pub exits: BTreeMap<&'static str, u64>,
    pub reloads: u64,
    /// Workers each scoreboard slot has held.
    pub slot_workers: HashMap<usize, u64>,
    /// The worker count statsd was last told.
    pub workers_sent: Option<usize>,
    /// When statsd was last told the backlog.
    pub backlog_sent: Option<Instant>,
}

/// One worker as shown.
pub(super) struct WorkerView {
    pub pid: Pid,
    pub age: u64,
    pub state: &'static str,
    /// Of the generation serving now (not one being replaced or started).
    pub current: bool,
    pub aborted: bool,
    pub requests: u64,
    /// Seconds since its last heartbeat.
    pub silent: f64,
    /// The request in hand (method and path) and its age in seconds.
    pub request: Option<(String, f64)>,
    /// The status of its last answer (0: none yet).
    pub last_status: u16,
    /// Resident memory, in bytes, and CPU time, in seconds (`None` when
    /// `/proc` cannot tell).
    pub rss: Option<u64>,
    pub cpu: Option<f64>,
    /// Workers its slot held before it.
    pub restarts: u64,
}

/// The server as shown.
pub(super) struct ServerView {
    /// By age, oldest first.
    pub workers: Vec<WorkerView>,
    /// Workers wanted.
    pub target: usize,
    /// Requests served, by the workers alive and gone.
    pub requests: u64,
    /// The workers' tallies summed, alive and gone.
    pub totals: Totals,
    /// CPU seconds of every worker, alive and gone.
    pub cpu: f64,
    /// Worker exits, by cause.
    pub exits: Vec<(&'static str, u64)>,
    pub reloads: u64,
    /// Workers forked since the start.
    pub spawned: u64,
    /// Whether the server should get traffic: a current worker serves,
    /// and it is not stopping.
    pub ready: bool,
    /// Seconds since the master started.
    pub uptime: f64,
    /// Each listener (as shown in the log), its fd, and the connections
    /// waiting in its accept queue (TCP only).
    pub listeners: Vec<(String, i32, Option<u32>)>,
}

impl ServerView {
    /// Workers in each state.
    pub fn by_state(&self) -> [(&'static str, usize); 4] {
        let mut counts = STATES.map(|s| (s, 0));
        for w in &self.workers {
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == w.state) {
                entry.1 += 1;
            }
        }
        counts
    }
}

/// The states a worker is shown in.
const STATES: [&str; 4] = ["booting", "idle", "busy", "stopping"];

fn state_name(state: SlotState) -> &'static str {
    match state {
        SlotState::Free | SlotState::Booting => "booting",
        SlotState::Idle => "idle",
        SlotState::Busy => "busy",
        SlotState::Stopping => "stopping",
    }
}

impl Master {
    /// The server now.
    pub(super) fn view(&self) -> ServerView {
        let mut workers: Vec<WorkerView> = self.workers.iter().map(|(pid, w)| self.worker_view(*pid, w)).collect();
        workers.sort_by_key(|w| w.age);
        let mut totals = self.counts.tally_gone.clone();
        for w in self.workers.values() {
            totals += &self.board.tally(w.slot).read();
        }
        let listeners = self.current.listeners.iter().map(|l| {
            let fd = l.as_raw_fd();
            (l.describe(), fd, sys::listen_queue(fd))
        });
        ServerView {
            target: self.current.target,
            requests: self.counts.requests_gone + workers.iter().map(|w| w.requests).sum::<u64>(),
            totals,
            cpu: self.counts.cpu_gone + workers.iter().filter_map(|w| w.cpu).sum::<f64>(),
            exits: CAUSES.iter().map(|cause| (*cause, self.counts.exits.get(cause).copied().unwrap_or(0))).collect(),
            reloads: self.counts.reloads,
            spawned: self.next_age.saturating_sub(1),
            ready: self.ready(),
            uptime: self.counts.since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            listeners: listeners.collect(),
            workers,
        }
    }

    fn worker_view(&self, pid: Pid, w: &WorkerEntry) -> WorkerView {
        let usage = procfs::process::Process::new(pid.as_raw()).and_then(|p| p.stat()).ok();
        let tick = procfs::ticks_per_second() as f64;
        WorkerView {
            pid,
            age: w.age,
            state: state_name(self.board.state(w.slot)),
            current: w.generation == self.current.id,
            aborted: w.aborted.is_some(),
            requests: self.board.requests(w.slot),
            silent: self.board.silent_for_ms(w.slot) as f64 / 1000.0,
            request: self.board.request_line(w.slot).zip(self.board.request_running_ms(w.slot)).map(|(line, ms)| (line, ms as f64 / 1000.0)),
            last_status: self.board.tally(w.slot).last_status(),
            rss: usage.as_ref().map(|s| s.rss * procfs::page_size()),
            cpu: usage.as_ref().map(|s| (s.utime + s.stime) as f64 / tick),
            restarts: self.counts.slot_workers.get(&w.slot).map_or(0, |n| n.saturating_sub(1)),
        }
    }
}

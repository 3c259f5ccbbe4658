//! What a worker counts as it serves, in its scoreboard slot: requests by
//! status class, a request-duration histogram, bytes in and out, accepted
//! connections, the last status. Every count only grows, with relaxed
//! atomic adds on the worker's own slot (no lock, no system call, no
//! cache line shared with another worker), and has a fixed size: the
//! server's totals are the slots' tallies summed, plus what the master
//! kept of the workers gone ([`Totals`]).

use std::ops::AddAssign;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request-duration histogram's buckets, in seconds:
/// the default buckets of Prometheus' client libraries, so dashboards
/// made for them fit. One more bucket counts the slower requests.
pub const DURATION_BOUNDS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
const BUCKETS: usize = DURATION_BOUNDS.len() + 1;
/// The same bounds in microseconds, for the worker's comparison.
const BOUNDS_US: [u64; DURATION_BOUNDS.len()] =
    [5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 250_000, 500_000, 750_000, 1_000_000, 2_500_000, 5_000_000, 7_500_000, 10_000_000];

/// Status classes counted: 1xx to 5xx.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One slot's counts, in shared memory (all-zero is a fresh tally).
#[repr(C)]
pub struct Tally {
    by_class: [AtomicU64; STATUS_CLASSES.len()],
    /// Requests per duration bucket (not cumulative).
    durations: [AtomicU64; BUCKETS],
    duration_sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    accepted: AtomicU64,
    handed_over: AtomicU64,
    last_status: AtomicU32,
}

/// One request as the tally counts it.
pub struct Served {
    /// The status code answered (0: none).
    pub status: u16,
    /// How long the app took, for requests that reached it.
    pub duration: Option<Duration>,
    /// Request head and body bytes read.
    pub bytes_in: u64,
    /// Response head and body bytes written.
    pub bytes_out: u64,
}

impl Tally {
    /// Count a request answered.
    pub fn record(&self, served: &Served) {
        // A status outside 100..=599 (none at all: 0) has no class.
        if let Some(class) = usize::from(served.status / 100).checked_sub(1).and_then(|c| self.by_class.get(c)) {
            class.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(duration) = served.duration {
            let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
            let bucket = BOUNDS_US.iter().position(|bound| us <= *bound).unwrap_or(BUCKETS - 1);
            self.durations[bucket].fetch_add(1, Ordering::Relaxed);
            self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(served.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(served.bytes_out, Ordering::Relaxed);
        self.last_status.store(u32::from(served.status), Ordering::Relaxed);
    }

    /// Count a connection accepted.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Count connections handed over to other workers.
    pub fn handed_over(&self, n: u64) {
        if n > 0 {
            self.handed_over.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The status of the last request answered (0: none yet).
    pub fn last_status(&self) -> u16 {
        u16::try_from(self.last_status.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Start from zero, for a new worker (master, before its fork).
    pub fn reset(&self) {
        let all = self.by_class.iter().chain(&self.durations);
        for cell in all.chain([&self.duration_sum_us, &self.bytes_in, &self.bytes_out, &self.accepted, &self.handed_over]) {
            cell.store(0, Ordering::Relaxed);
        }
        self.last_status.store(0, Ordering::Relaxed);
    }

    /// What it says now.
    pub fn read(&self) -> Totals {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        Totals {
            by_class: self.by_class.each_ref().map(load),
            durations: self.durations.each_ref().map(load),
            duration_sum_us: load(&self.duration_sum_us),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            accepted: load(&self.accepted),
            handed_over: load(&self.handed_over),
        }
    }
}

/// A tally read out, or several summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered, by [`STATUS_CLASSES`].
    pub by_class: [u64; STATUS_CLASSES.len()],
    /// Requests timed, by [`DURATION_BOUNDS`] bucket (not cumulative).
    pub durations: [u64; BUCKETS],
    /// Their durations summed, in microseconds.
    pub duration_sum_us: u64,
    /// Request bytes read: heads and bodies.
    pub bytes_in: u64,
    /// Response bytes written: heads and bodies.
    pub bytes_out: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections handed over to another worker.
    pub handed_over: u64,
}

impl Totals {
    /// Requests timed by the histogram.
    pub fn timed(&self) -> u64 {
        self.durations.iter().sum()
    }

    /// Requests answered, every status class.
    pub fn answered(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// The histogram as Prometheus has it: (upper bound, requests at most
    /// that long), `+Inf` last.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = DURATION_BOUNDS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.durations.iter().scan(0, |sum, n| {
            *sum += n;
            Some(*sum)
        }))
    }
}

impl AddAssign<&Totals> for Totals {
    fn add_assign(&mut self, other: &Totals) {
        let pairs = self.by_class.iter_mut().zip(&other.by_class).chain(self.durations.iter_mut().zip(&other.durations));
        for (mine, theirs) in pairs {
            *mine += theirs;
        }
        self.duration_sum_us += other.duration_sum_us;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.accepted += other.accepted;
        self.handed_over += other.handed_over;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> Box<Tally> {
        // SAFETY: all-zero is a fresh tally (atomics only).
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn requests_fall_in_their_class_and_bucket() {
        let t = tally();
        let served = |status, ms: Option<u64>| Served { status, duration: ms.map(Duration::from_millis), bytes_in: 10, bytes_out: 100 };
        t.record(&served(200, Some(1)));
        t.record(&served(204, Some(5)));
        t.record(&served(404, Some(6)));
        t.record(&served(503, Some(20_000)));
        t.record(&served(400, None));
        t.record(&served(0, None));
        t.accepted();
        t.handed_over(3);
        let totals = t.read();
        assert_eq!(totals.by_class, [0, 2, 0, 2, 1], "no status, no class");
        assert_eq!((totals.answered(), totals.timed()), (5, 4));
        let cumulative: Vec<(f64, u64)> = totals.cumulative().collect();
        assert_eq!(cumulative[0], (0.005, 2), "5 ms is at most 5 ms");
        assert_eq!(cumulative[1], (0.01, 3));
        assert_eq!(cumulative[13], (10.0, 3));
        assert_eq!(cumulative[14], (f64::INFINITY, 4));
        assert_eq!(totals.duration_sum_us, 20_012_000);
        assert_eq!((totals.bytes_in, totals.bytes_out, totals.accepted, totals.handed_over), (60, 600, 1, 3));
        assert_eq!(t.last_status(), 0);
        let mut sum = totals.clone();
        sum += &totals;
        assert_eq!((sum.answered(), sum.timed(), sum.bytes_out), (10, 8, 1200));
        t.reset();
        assert_eq!((t.read(), t.last_status()), (Totals::default(), 0));
    }

    #[test]
    fn bounds_agree() {
        for (seconds, us) in DURATION_BOUNDS.iter().zip(BOUNDS_US) {
            assert_eq!((seconds * 1e6).round() as u64, us);
        }
    }
}

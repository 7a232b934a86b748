//! Process-wide metrics: counters, gauges and fixed-bucket histograms kept
//! in atomics (this file), the registry of every metric the process records
//! (`metrics/registry.rs`, [`METRICS`]) and the Prometheus text exposition
//! format they are rendered in (`metrics/text.rs`).
//!
//! No thread owns this module. Every component bumps [`METRICS`] where the
//! event happens (the leader thread counts elections, the worker's pool
//! threads time tasks, ...); the `http` threads render it on `GET /metrics`,
//! adding the values read at scrape time (leadership, Redis state, RSS).
//! Recording is one relaxed atomic operation, so it costs nothing
//! measurable on the hot paths, and no dependency is needed.

mod registry;
mod text;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub use registry::METRICS;
pub use text::{Encoder, Kind};

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at 0.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// A value that goes up and down (a whole number: in-flight requests,
/// busy pool threads).
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at 0.
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts 1.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

/// Most finite bucket bounds a [`Histogram`] may have.
pub const MAX_BUCKETS: usize = 24;

/// Bucket bounds in seconds for latencies from 100 µs to 10 s
/// (dispatch, queue wait, heartbeat round trips).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bucket bounds in seconds for task run times, from 1 ms to 1 h.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A distribution over fixed buckets (`le` upper bounds, ascending), with
/// the sum and count of the observations: quantiles such as P50/P95/P99
/// come from `histogram_quantile()` in Prometheus.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket counts (not cumulative); index `bounds.len()` is `+Inf`.
    counts: [AtomicU64; MAX_BUCKETS + 1],
    sum_bits: AtomicU64,
}

/// A consistent copy of a histogram, cumulative as the format wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, observations <= le)`, ascending, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations (equals the `+Inf` bucket).
    pub count: u64,
}

impl Histogram {
    /// A histogram with bucket upper bounds `bounds` (ascending, at most
    /// [`MAX_BUCKETS`]; checked at compile time for statics).
    pub const fn new(bounds: &'static [f64]) -> Histogram {
        assert!(bounds.len() <= MAX_BUCKETS, "too many histogram buckets");
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; MAX_BUCKETS + 1],
            sum_bits: AtomicU64::new(0),
        }
    }

    /// Records one observation. Negative values count as 0; NaN is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let value = value.max(0.0);
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // A CAS loop: there is no atomic f64 add. Contention is negligible.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Records a duration given in milliseconds (Redis times), in seconds.
    pub fn observe_ms(&self, ms: i64) {
        self.observe(ms as f64 / 1000.0);
    }

    /// The cumulative buckets, sum and count. The count is the sum of the
    /// bucket counts read, so `+Inf` and `_count` always agree.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len() + 1);
        for (i, bound) in self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
        {
            total += self.counts[i].load(Ordering::Relaxed);
            buckets.push((bound, total));
        }
        HistogramSnapshot {
            buckets,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            count: total,
        }
    }
}

/// This process's resident set size in bytes: the second field of
/// `/proc/self/statm` (pages) times the page size. `None` where there is no
/// procfs.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        static H: Histogram = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 2.0, f64::NAN, -1.0] {
            H.observe(v);
        }
        let s = H.snapshot();
        assert_eq!(s.buckets, vec![(0.1, 3), (1.0, 4), (f64::INFINITY, 5)]);
        assert_eq!(s.count, 5);
        assert!((s.sum - 2.65).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn rss_is_read() {
        let rss = resident_memory_bytes().expect("procfs");
        assert!(rss > 100_000, "{rss}");
    }
}

//! A fixed-bucket histogram for `/metrics` (Prometheus's cumulative `le` buckets): observing
//! is a few atomic adds, a scrape reads the counts, and memory stays constant however long
//! the coordinator runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (ms) of the write-fence buckets: a fence usually lasts a few milliseconds,
/// and more than `rebalance.write_fence_timeout_ms` (5 s by default) only when raised.
pub const FENCE_BUCKETS_MS: &[u64] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// Upper bounds (µs) of the catalog journal's wait: a worker's fsynced append takes a
/// millisecond or a few; [`crate::catalog_journal::WAIT_LIMIT`] is the most a write waits.
pub const JOURNAL_WAIT_BUCKETS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000, 10_000_000,
];

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Per bucket (not cumulative); the last one is above every bound.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

/// What a scrape reads: cumulative counts per upper bound, then the total.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at most that), ascending.
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    pub sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            running += c.load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let above = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            count: running + above,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;

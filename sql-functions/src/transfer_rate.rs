//! How fast each running job moves bytes, measured over its last seconds of actual transfer.
//!
//! A job's ETA used to be its bytes done over the time since it started: time spent planning,
//! fenced, switching or waiting for a retry counted as transfer, and the rate lagged every
//! change of bandwidth. Here a job's clock advances only while at least one of its
//! `pull_files` calls runs (tasks running in parallel do not advance it twice), and the rate
//! is the bytes received over the last [`WINDOW`] of that clock.
//!
//! The meter lives in memory: a restarted coordinator has no samples until its moves have
//! run a while, and [`Cluster::job_status`](crate::Cluster::job_status) falls back to the
//! average over the job's time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The span of transfer time the rate is measured over.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Less transfer time than this gives no rate (the first samples of a call are noise).
const MIN_SPAN: Duration = Duration::from_millis(1500);

#[derive(Debug, Default)]
pub(crate) struct TransferMeter {
    jobs: Mutex<HashMap<i64, JobMeter>>,
}

#[derive(Debug, Default)]
struct JobMeter {
    pulls_running: usize,
    /// Transfer time before `active_since`.
    active: Duration,
    /// Set while a pull runs.
    active_since: Option<Instant>,
    /// Bytes received by the job's pulls since the meter began.
    bytes: u64,
    /// (transfer time, bytes) samples, oldest first; older ones are dropped, but one at or
    /// before the window's start is kept.
    samples: VecDeque<(Duration, u64)>,
}

impl JobMeter {
    fn active_at(&self, now: Instant) -> Duration {
        self.active
            + self
                .active_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    fn sample(&mut self, now: Instant) {
        let at = self.active_at(now);
        self.samples.push_back((at, self.bytes));
        let start = at.saturating_sub(WINDOW);
        // Keep one sample at or before the window's start, so the window is covered whole.
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|s| s.0 <= start) {
            self.samples.pop_front();
        }
    }
}

impl TransferMeter {
    /// A `pull_files` call of `job_id` begins; the job's transfer clock runs until the
    /// returned guard (and those of its other calls) is dropped.
    pub(crate) fn pull_started(self: &Arc<Self>, job_id: i64) -> PullActivity {
        self.begin_at(job_id, Instant::now());
        PullActivity {
            meter: Arc::clone(self),
            job_id,
        }
    }

    fn begin_at(&self, job_id: i64, now: Instant) {
        let mut jobs = lock(&self.jobs);
        let meter = jobs.entry(job_id).or_default();
        if meter.pulls_running == 0 {
            meter.active_since = Some(now);
        }
        meter.pulls_running += 1;
        meter.sample(now);
    }

    fn end_at(&self, job_id: i64, now: Instant) {
        let mut jobs = lock(&self.jobs);
        if let Some(meter) = jobs.get_mut(&job_id) {
            meter.sample(now);
            meter.pulls_running = meter.pulls_running.saturating_sub(1);
            if meter.pulls_running == 0 {
                if let Some(since) = meter.active_since.take() {
                    meter.active += now.saturating_duration_since(since);
                }
            }
        }
    }

    /// `bytes` more were received by a pull of `job_id`.
    pub(crate) fn received(&self, job_id: i64, bytes: u64) {
        self.received_at(job_id, bytes, Instant::now());
    }

    fn received_at(&self, job_id: i64, bytes: u64, now: Instant) {
        let mut jobs = lock(&self.jobs);
        let meter = jobs.entry(job_id).or_default();
        meter.bytes += bytes;
        meter.sample(now);
    }

    /// Bytes per second over the job's last [`WINDOW`] of transfer time; `None` before it
    /// has transferred for a while.
    pub(crate) fn rate(&self, job_id: i64) -> Option<f64> {
        self.rate_at(job_id, Instant::now())
    }

    fn rate_at(&self, job_id: i64, now: Instant) -> Option<f64> {
        let jobs = lock(&self.jobs);
        let meter = jobs.get(&job_id)?;
        let at = meter.active_at(now);
        let start = at.saturating_sub(WINDOW);
        // The newest sample at or before the window's start, else the oldest.
        let (from_at, from_bytes) = meter
            .samples
            .iter()
            .rev()
            .find(|s| s.0 <= start)
            .or_else(|| meter.samples.front())
            .copied()?;
        let span = at.saturating_sub(from_at);
        (span >= MIN_SPAN).then(|| (meter.bytes - from_bytes) as f64 / span.as_secs_f64())
    }

    /// Drops what is known of a job that ended.
    pub(crate) fn forget(&self, job_id: i64) {
        lock(&self.jobs).remove(&job_id);
    }
}

/// A running `pull_files` call, as the meter sees it.
pub(crate) struct PullActivity {
    meter: Arc<TransferMeter>,
    job_id: i64,
}

impl Drop for PullActivity {
    fn drop(&mut self) {
        self.meter.end_at(self.job_id, Instant::now());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use super::TransferMeter;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn no_rate_before_a_pull_has_run_a_while() {
    let meter = TransferMeter::default();
    let t0 = Instant::now();
    assert_eq!(meter.rate_at(1, t0), None);
    meter.begin_at(1, t0);
    meter.received_at(1, 1000, t0 + secs(0.5));
    assert_eq!(meter.rate_at(1, t0 + secs(1.0)), None);
    meter.received_at(1, 1000, t0 + secs(2.0));
    let rate = meter.rate_at(1, t0 + secs(2.0)).unwrap();
    assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
}

/// Time with no pull running (a fence, a switch, a retry's backoff) is not transfer time.
#[test]
fn idle_time_between_pulls_does_not_lower_the_rate() {
    let meter = TransferMeter::default();
    let t0 = Instant::now();
    meter.begin_at(7, t0);
    meter.received_at(7, 2000, t0 + secs(2.0));
    meter.end_at(7, t0 + secs(2.0));
    // 30 s with nothing running.
    let later = t0 + secs(32.0);
    let rate = meter.rate_at(7, later).unwrap();
    assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
    meter.begin_at(7, later);
    meter.received_at(7, 1000, later + secs(1.0));
    let rate = meter.rate_at(7, later + secs(1.0)).unwrap();
    assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
}

/// The rate follows a change of bandwidth within one window, and parallel pulls add up
/// without counting their shared time twice.
#[test]
fn the_rate_is_measured_over_the_last_window_only() {
    let meter = TransferMeter::default();
    let t0 = Instant::now();
    meter.begin_at(3, t0);
    for s in 1..=30 {
        meter.received_at(3, 100, t0 + secs(s as f64));
    }
    // A second pull at the same time: 900 bytes/s more.
    meter.begin_at(3, t0 + secs(30.0));
    for s in 31..=45 {
        meter.received_at(3, 1000, t0 + secs(s as f64));
    }
    let rate = meter.rate_at(3, t0 + secs(45.0)).unwrap();
    assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
    meter.forget(3);
    assert_eq!(meter.rate_at(3, t0 + secs(45.0)), None);
}

/// Dropping the activity guard (a cancelled call) stops the clock.
#[test]
fn a_dropped_pull_stops_the_clock() {
    let meter = std::sync::Arc::new(TransferMeter::default());
    let pull = meter.pull_started(5);
    meter.received(5, 10);
    drop(pull);
    let jobs = meter.jobs.lock().unwrap();
    let job = &jobs[&5];
    assert_eq!(job.pulls_running, 0);
    assert!(job.active_since.is_none());
}

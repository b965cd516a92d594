//! Failpoints for crash tests, switched on by the environment variable `SHOAL_FAILPOINTS`
//! (comma-separated names) read once at first use. Production never sets it.
//!
//! - `crash_after:<phase>`: the coordinator aborts right after persisting that move phase,
//!   as a `kill -9` there would.
//! - `crash_before:<step>`: the same, just before a move runs that step (the steps within a
//!   persisted phase, such as the fence or the switch, are crash points too).
//! - `job_health_check_fails_once`: a rebalance or drain job's planning counts the first
//!   health check of each node that takes part as failed, as a worker restarting would.

use std::sync::LazyLock;

static ENABLED: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::env::var("SHOAL_FAILPOINTS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
});

pub fn enabled(name: &str) -> bool {
    ENABLED.iter().any(|f| f == name)
}

/// Aborts the process if `crash_after:<phase>` is set.
pub(crate) fn crash_after_phase(phase: &str) {
    if enabled(&format!("crash_after:{phase}")) {
        tracing::error!(phase, "failpoint crash_after reached: aborting");
        std::process::abort();
    }
}

/// Aborts the process if `crash_before:<step>` is set.
pub(crate) fn crash_before_step(step: &str) {
    if enabled(&format!("crash_before:{step}")) {
        tracing::error!(step, "failpoint crash_before reached: aborting");
        std::process::abort();
    }
}

//! Failpoints: named places where a test makes the process misbehave on purpose (corrupt a
//! transfer, abort at a step), so that crash and corruption handling can be tested against
//! real processes.
//!
//! They are switched on by name in the environment variable [`ENV_VAR`], a comma-separated
//! list (`SHOAL_FAILPOINTS=pull_corrupt_once,other`). The variable is read once per process
//! by [`enabled`] and [`fire_once`]. A worker does not read it itself: its set comes from
//! `WorkerConfig::failpoints` (filled by the CLI with [`from_env`]), so tests that run several
//! workers in one process can give each its own set.
//!
//! Failpoints known today:
//! - `pull_corrupt_once` (worker): the first file the worker receives in a `pull_files` gets
//!   one byte flipped before it is verified; later files are clean.
//! - `disk_free_bytes=<n>` (worker): `health` and `handshake` report `n` free bytes, to test
//!   the disk checks of moves without filling a disk.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// The environment variable that lists the enabled failpoints.
pub const ENV_VAR: &str = "SHOAL_FAILPOINTS";

/// The failpoint names in a comma-separated list; blanks around names and empty entries are
/// ignored.
pub fn parse(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect()
}

/// The failpoints enabled in [`ENV_VAR`] now (none if it is unset or not UTF-8).
pub fn from_env() -> Vec<String> {
    std::env::var(ENV_VAR)
        .map(|list| parse(&list))
        .unwrap_or_default()
}

/// The process-wide set, from the environment as it was on first use.
static PROCESS: LazyLock<FailpointSet> = LazyLock::new(|| FailpointSet::new(from_env()));

/// Is the failpoint `name` enabled in this process's [`ENV_VAR`]?
pub fn enabled(name: &str) -> bool {
    PROCESS.enabled(name)
}

/// True the first time it is called for an enabled failpoint `name` in this process, false
/// afterwards and for disabled failpoints: for faults that must happen exactly once.
pub fn fire_once(name: &str) -> bool {
    PROCESS.fire_once(name)
}

/// A set of enabled failpoints with its own one-shot state (one per worker).
#[derive(Debug, Default)]
pub struct FailpointSet {
    enabled: HashSet<String>,
    /// One-shot failpoints that have fired already.
    fired: Mutex<HashSet<String>>,
}

impl FailpointSet {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        FailpointSet {
            enabled: names.into_iter().collect(),
            fired: Mutex::new(HashSet::new()),
        }
    }

    pub fn enabled(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// The value of an enabled `name=<value>` failpoint.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.enabled
            .iter()
            .find_map(|f| f.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }

    /// True exactly once for an enabled failpoint, false for a disabled one.
    pub fn fire_once(&self, name: &str) -> bool {
        if !self.enabled(name) {
            return false;
        }
        self.fired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string())
    }
}

#[cfg(test)]
mod tests;

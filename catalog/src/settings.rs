//! Cluster settings (`set_cluster_setting`): their names, defaults and kinds, checked when
//! set, and [`ClusterSettings`], every value typed, read when a decision needs them. A stored
//! value that does not parse is an error there, never a silent default: these values decide
//! how long writes are fenced, how often a move is retried and when files are deleted.

use crate::error::{CatalogError, Result};

/// Cluster settings with their defaults and descriptions, as `shoal.cluster_settings` lists them.
pub const SETTINGS_DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "auto_rebalance",
        "off",
        "start a rebalance when add_node registers a worker",
    ),
    (
        "rebalance.max_bandwidth_mb",
        "unlimited",
        "per-move transfer limit in MB/s",
    ),
    (
        "rebalance.yield_bandwidth_mb",
        "50",
        "per-move transfer limit in MB/s while queries or writes run (below max_bandwidth_mb); unlimited: never yield",
    ),
    (
        "rebalance.max_concurrent_moves",
        "2",
        "moves running at once in a rebalance job",
    ),
    (
        "rebalance.max_moves_per_node",
        "1",
        "moves touching one node at once",
    ),
    (
        "rebalance.write_fence_timeout_ms",
        "5000",
        "longest a move may hold writes to a shard group",
    ),
    (
        "rebalance.task_retries",
        "10",
        "failed attempts of a move before it stops retrying and its job fails",
    ),
    (
        "rebalance.retry_backoff_ms",
        "5000",
        "wait before the first retry of a failed move; x4 per further retry, at most 60 s",
    ),
    (
        "scrub.rate_mb",
        "4",
        "MB/s of shard files the scrubber re-reads to check their CRC-32C; 0: off",
    ),
    (
        "cleanup.retain_deleted_ms",
        "0",
        "how long replaced and dropped files stay on the workers before they are deleted; longer than the interval of catalog backups, so that restoring the last one finds every file",
    ),
];

/// What values a cluster setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
    Bool,
    /// A rate in MB/s above zero, or `unlimited`.
    RateOrUnlimited,
    /// A whole number at least 1.
    Positive,
    /// A whole number at least 0.
    NonNegative,
}

impl SettingKind {
    pub fn of(name: &str) -> Option<SettingKind> {
        Some(match name {
            "auto_rebalance" => SettingKind::Bool,
            "rebalance.max_bandwidth_mb" | "rebalance.yield_bandwidth_mb" => {
                SettingKind::RateOrUnlimited
            }
            "rebalance.max_concurrent_moves"
            | "rebalance.max_moves_per_node"
            | "rebalance.write_fence_timeout_ms" => SettingKind::Positive,
            "rebalance.task_retries"
            | "rebalance.retry_backoff_ms"
            | "scrub.rate_mb"
            | "cleanup.retain_deleted_ms" => SettingKind::NonNegative,
            _ => return None,
        })
    }

    pub(crate) fn expected(self) -> &'static str {
        match self {
            SettingKind::Bool => "on or off",
            SettingKind::RateOrUnlimited => "a number of MB/s above 0, or unlimited",
            SettingKind::Positive => "a whole number of at least 1",
            SettingKind::NonNegative => "a whole number of at least 0",
        }
    }

    /// The value in its stored spelling, or `None` if it is not one of this kind's values.
    pub fn canonical(self, value: &str) -> Option<String> {
        let v = value.trim();
        // Whole numbers up to a day in ms or a million moves: anything larger is a typo.
        let whole = |min: u64| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= min && *n <= 1_000_000_000)
                .map(|n| n.to_string())
        };
        match self {
            SettingKind::Bool => match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => Some("on".into()),
                "off" | "false" | "no" | "0" => Some("off".into()),
                _ => None,
            },
            SettingKind::RateOrUnlimited => {
                if v.eq_ignore_ascii_case("unlimited") {
                    return Some("unlimited".into());
                }
                v.parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0 && *r <= 1e9)
                    .map(|r| r.to_string())
            }
            SettingKind::Positive => whole(1),
            SettingKind::NonNegative => whole(0),
        }
    }
}

/// The cluster settings, every value typed (the stored one, or the default).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// `auto_rebalance`: start a rebalance when `add_node` registers a worker.
    pub auto_rebalance: bool,
    /// `rebalance.max_bandwidth_mb`: per-move limit in MB/s; `None`: unlimited.
    pub max_bandwidth_mb: Option<f64>,
    /// `rebalance.yield_bandwidth_mb`: the limit while clients' statements run; `None`: never
    /// yield.
    pub yield_bandwidth_mb: Option<f64>,
    /// `rebalance.max_concurrent_moves` (at least 1).
    pub max_concurrent_moves: u64,
    /// `rebalance.max_moves_per_node` (at least 1).
    pub max_moves_per_node: u64,
    /// `rebalance.write_fence_timeout_ms` (at least 1).
    pub write_fence_timeout_ms: u64,
    /// `rebalance.task_retries`.
    pub task_retries: u64,
    /// `rebalance.retry_backoff_ms`.
    pub retry_backoff_ms: u64,
    /// `scrub.rate_mb`; 0: the scrubber is off.
    pub scrub_rate_mb: u64,
    /// `cleanup.retain_deleted_ms`.
    pub retain_deleted_ms: u64,
}

impl ClusterSettings {
    /// From every setting's `(name, value)`; a value its kind does not take (a catalog
    /// edited by hand, or written by another version) is an error naming it.
    pub fn parse<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let values: Vec<(&str, &str)> = values.into_iter().collect();
        let canonical = |name: &str| -> Result<String> {
            let kind = SettingKind::of(name).ok_or_else(|| CatalogError::Invalid {
                message: format!("unrecognized cluster setting \"{name}\""),
            })?;
            let text = values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| CatalogError::Invalid {
                    message: format!("cluster setting \"{name}\" has no value"),
                })?;
            kind.canonical(text).ok_or_else(|| CatalogError::Invalid {
                message: format!(
                    "cluster setting \"{name}\" holds \"{text}\", which is not {}",
                    kind.expected()
                ),
            })
        };
        let flag = |name: &str| -> Result<bool> { Ok(canonical(name)? == "on") };
        let rate = |name: &str| -> Result<Option<f64>> {
            let v = canonical(name)?;
            if v == "unlimited" {
                return Ok(None);
            }
            v.parse::<f64>()
                .map(Some)
                .map_err(|_| CatalogError::Invalid {
                    message: format!("cluster setting \"{name}\" holds \"{v}\""),
                })
        };
        let whole = |name: &str| -> Result<u64> {
            let v = canonical(name)?;
            v.parse::<u64>().map_err(|_| CatalogError::Invalid {
                message: format!("cluster setting \"{name}\" holds \"{v}\""),
            })
        };
        Ok(ClusterSettings {
            auto_rebalance: flag("auto_rebalance")?,
            max_bandwidth_mb: rate("rebalance.max_bandwidth_mb")?,
            yield_bandwidth_mb: rate("rebalance.yield_bandwidth_mb")?,
            max_concurrent_moves: whole("rebalance.max_concurrent_moves")?,
            max_moves_per_node: whole("rebalance.max_moves_per_node")?,
            write_fence_timeout_ms: whole("rebalance.write_fence_timeout_ms")?,
            task_retries: whole("rebalance.task_retries")?,
            retry_backoff_ms: whole("rebalance.retry_backoff_ms")?,
            scrub_rate_mb: whole("scrub.rate_mb")?,
            retain_deleted_ms: whole("cleanup.retain_deleted_ms")?,
        })
    }
}

#[cfg(test)]
mod tests;

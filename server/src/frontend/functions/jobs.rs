//! The rebalancing, move and job functions: `rebalance_start`, `rebalance_plan`,
//! `rebalance_status`, `rebalance_stop`, `rebalance_wait`, `drain_node`, `move_shard`,
//! `job_wait`, `job_cancel` and their Citus aliases.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use shoal_catalog::{JobType, TaskState};
use shoal_sql_functions::{
    parse_transfer_mode, Cluster, ClusterError, JobStatus, RebalanceRequest,
};

use super::{bigint, void, Args, Notice};
use crate::frontend::errors::PgError;
use crate::query::views;

/// Job types `rebalance_status`, `rebalance_stop` and `rebalance_wait` look at.
const REBALANCE_TYPES: &[JobType] = &[JobType::Rebalance, JobType::Drain];

fn batch(schema: arrow::datatypes::SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch, PgError> {
    RecordBatch::try_new(schema, cols).map_err(|e| PgError::new("XX000", e.to_string()))
}

/// `add_node` registered a new worker: with `auto_rebalance` on, start a rebalance.
pub(super) async fn after_add_node(
    cluster: &Arc<Cluster>,
    notices: &mut Vec<Notice>,
) -> Result<(), PgError> {
    let settings = cluster
        .catalog()
        .cluster_settings()
        .map_err(ClusterError::from)?;
    if !settings.auto_rebalance {
        return Ok(());
    }
    match cluster
        .start_rebalance(&RebalanceRequest::default(), JobType::Rebalance)
        .await
    {
        Ok(s) => notices.extend(s.all_notices().map(Notice::from_plan)),
        // The node is added either way; say why no rebalance started.
        Err(e) => notices.push(Notice::warning(format!(
            "auto_rebalance: no rebalance was started: {e}"
        ))),
    }
    Ok(())
}

/// The `shard_transfer_mode` argument (default `auto`).
fn transfer_mode(a: &Args) -> Result<shoal_catalog::TransferMode, PgError> {
    match a.opt_text("shard_transfer_mode") {
        Some(text) => Ok(parse_transfer_mode(&text)?),
        None => Ok(shoal_catalog::TransferMode::Auto),
    }
}

fn request(a: &Args) -> Result<RebalanceRequest, PgError> {
    Ok(RebalanceRequest {
        strategy: a.opt_text("rebalance_strategy"),
        drain_only: a.bool("drain_only").unwrap_or(false),
        threshold: a.opt_real("threshold"),
        improvement_threshold: a.opt_real("improvement_threshold"),
        transfer_mode: transfer_mode(a)?,
        max_bandwidth_mb: a.opt_real("max_bandwidth_mb"),
        max_concurrent_moves: a.opt_int("max_concurrent_moves"),
        drain_nodes: Vec::new(),
        hypothetical_nodes: 0,
    })
}

pub(super) async fn call(
    cluster: &Arc<Cluster>,
    function: &str,
    name: &str,
    a: &Args,
    notices: &mut Vec<Notice>,
) -> Result<RecordBatch, PgError> {
    match function {
        "rebalance_start" => {
            if let Some(n) = a.opt_int("max_concurrent_moves") {
                if n < 1 {
                    return Err(PgError::new(
                        "22023",
                        "max_concurrent_moves must be at least 1",
                    ));
                }
            }
            let s = cluster
                .start_rebalance(&request(a)?, JobType::Rebalance)
                .await?;
            notices.extend(s.all_notices().map(Notice::from_plan));
            bigint(name, s.job_id)
        }
        "rebalance_simulate" => {
            let add = a.opt_int("add_nodes").unwrap_or(0);
            if !(0..=1000).contains(&add) {
                return Err(PgError::new(
                    "22023",
                    format!("add_nodes must be between 0 and 1000, not {add}"),
                ));
            }
            let mut req = request(a)?;
            req.hypothetical_nodes = add as usize;
            for addr in a
                .opt_text("drain")
                .iter()
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (host, port) = parse_addr(addr)?;
                req.drain_nodes
                    .push(super::node_at(cluster, host, port)?.node_id);
            }
            let sim = cluster.simulate(&req)?;
            notices.extend(sim.notices.iter().map(Notice::from_plan));
            let eta = match sim.rate_bytes_per_s {
                Some(rate) if rate > 0.0 => format!(
                    "about {:.0} s at {:.1} MB/s (the last moves' rate, or rebalance.max_bandwidth_mb)",
                    sim.bytes_to_move as f64 / rate,
                    rate / 1e6
                ),
                _ => "no move has been measured yet to estimate the time".into(),
            };
            notices.push(Notice::info(format!(
                "{} moves of {}; {eta}",
                sim.moves,
                pretty(sim.bytes_to_move)
            )));
            Ok(views::rebalance_simulate_batch(&sim)?)
        }
        "rebalance_plan" | "get_rebalance_table_shards_plan" => {
            let (rows, plan_notices) = cluster.rebalance_plan(&request(a)?)?;
            notices.extend(plan_notices.iter().map(Notice::from_plan));
            let schema = if function == "rebalance_plan" {
                views::rebalance_plan_schema()
            } else {
                views::citus_rebalance_plan_schema()
            };
            batch(
                schema,
                vec![
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.table_name.clone()),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.shard_id),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.shard_size as i64),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.source_host.clone()),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.source_port as i64),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.target_host.clone()),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.target_port as i64),
                    )),
                ],
            )
        }
        "rebalance_status" | "citus_rebalance_status" => {
            let latest = cluster
                .catalog()
                .latest_job(REBALANCE_TYPES)
                .map_err(ClusterError::from)?;
            let status = match latest {
                Some(j) => Some(cluster.job_status(j)?),
                None => None,
            };
            status_batch(function == "citus_rebalance_status", status.as_ref())
        }
        "rebalance_stop" => {
            // The newest first: a drain queued behind the running job must not start when
            // that one is cancelled.
            let mut stopped = 0;
            while let Some(job) = cluster
                .catalog()
                .active_job(REBALANCE_TYPES)
                .map_err(ClusterError::from)?
            {
                let ended = cluster.cancel_job(job.job_id).await?;
                notices.push(Notice::info(format!(
                    "job {} is {}; finished moves stay, the running ones were rolled back",
                    ended.job_id, ended.state
                )));
                stopped += 1;
            }
            if stopped == 0 {
                return Err(PgError::new(
                    "55000",
                    "no ongoing rebalance that can be stopped",
                ));
            }
            void(name)
        }
        "rebalance_wait" => {
            let Some(job) = cluster
                .catalog()
                .active_job(REBALANCE_TYPES)
                .map_err(ClusterError::from)?
            else {
                notices.push(Notice::warning(
                    "no ongoing rebalance that can be waited on",
                ));
                return void(name);
            };
            cluster.wait_job(job.job_id, true).await?;
            void(name)
        }
        "drain_node" | "citus_drain_node" | "drain_nodes" => {
            let nodes = if function == "drain_nodes" {
                let list = a.text("nodes")?;
                let mut nodes = Vec::new();
                for addr in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (host, port) = parse_addr(addr)?;
                    let node = super::node_at(cluster, host, port)?;
                    if !nodes
                        .iter()
                        .any(|n: &shoal_catalog::Node| n.node_id == node.node_id)
                    {
                        nodes.push(node);
                    }
                }
                if nodes.is_empty() {
                    return Err(PgError::new("22023", "drain_nodes needs at least one node")
                        .with_hint(Some(
                            "Name them as 'host:port', separated by commas.".into(),
                        )));
                }
                nodes
            } else {
                vec![super::node_at(cluster, &a.text("host")?, a.port()?)?]
            };
            let names: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
            let s = cluster.drain_nodes(&nodes, request(a)?).await?;
            let Some(job_id) = s.job_id else {
                notices.push(Notice::info(format!(
                    "{} {} no shards to move",
                    if names.len() == 1 { "node" } else { "nodes" },
                    if names.len() == 1 {
                        format!("{} holds", names[0])
                    } else {
                        format!("{} hold", names.join(", "))
                    }
                )));
                return if function == "citus_drain_node" {
                    void(name)
                } else {
                    bigint(name, None)
                };
            };
            notices.extend(s.notices.iter().map(Notice::from_plan));
            if a.bool("wait").unwrap_or(true) {
                cluster.wait_job(job_id, true).await?;
            } else {
                notices.extend(s.scheduled.iter().map(Notice::from_plan));
            }
            if function == "citus_drain_node" {
                void(name)
            } else {
                bigint(name, Some(job_id))
            }
        }
        "move_shard" | "citus_move_shard_placement" => {
            let shard_id = a.int("shard_id")?;
            let host = a.text("target_host")?;
            let port = u16::try_from(a.int("target_port")?)
                .map_err(|_| PgError::new("22023", "target_port is out of range"))?;
            if function == "citus_move_shard_placement" {
                let src_host = a.text("source_node_name")?;
                let src_port = a.int("source_node_port")?;
                if src_host == host && src_port == i64::from(port) {
                    return Err(PgError::new("22023", "cannot move shard to the same node"));
                }
                let held = cluster
                    .shard_on_node(shard_id, &src_host, src_port)
                    .map_err(PgError::from)?;
                let already = cluster.shard_on_node(shard_id, &host, i64::from(port))?;
                if !held && !already {
                    return Err(PgError::new(
                        "22023",
                        format!("could not find placement matching \"{src_host}:{src_port}\""),
                    )
                    .with_hint(Some(
                        "Confirm the placement still exists and try again.".into(),
                    )));
                }
            }
            let mode = transfer_mode(a)?;
            let (_, plan_notices) = cluster.move_shard(shard_id, &host, port, mode).await?;
            notices.extend(plan_notices.iter().map(Notice::from_plan));
            void(name)
        }
        "job_wait" => {
            let job_id = a.int("job_id")?;
            let desired = a.opt_text("desired_status");
            let job = cluster.wait_job(job_id, desired.is_none()).await?;
            if let Some(d) = desired {
                if job.state.as_str() != d {
                    return Err(PgError::new(
                        "55000",
                        format!(
                            "Job reached terminal state \"{}\" instead of desired state \"{d}\"",
                            job.state
                        ),
                    ));
                }
            }
            void(name)
        }
        "job_cancel" => {
            cluster.cancel_job(a.int("job_id")?).await?;
            void(name)
        }
        other => Err(PgError::new(
            "XX000",
            format!("function {other} has no implementation"),
        )),
    }
}

/// `host:port` of a node list (`drain_nodes`, `rebalance_simulate(drain => ...)`).
fn parse_addr(addr: &str) -> Result<(&str, u16), PgError> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            PgError::new("22023", format!("\"{addr}\" is not host:port")).with_hint(Some(
                "Name the nodes as 'host:port', separated by commas.".into(),
            ))
        })
}

/// Size as `pg_size_pretty` prints it.
fn pretty(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 10.0 * 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v.round() as u64, UNITS[u])
}

/// JSON text with keys ordered as PostgreSQL's jsonb prints them: by length, then bytes.
fn jsonb_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}: {}",
                        serde_json::Value::String((*k).clone()),
                        jsonb_text(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        serde_json::Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(jsonb_text).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// `details` in Citus's shape: running tasks (with phase, hosts and sizes), then failed or
/// retrying ones, and the count of tasks per state.
fn details(s: &JobStatus) -> String {
    use serde_json::{json, Map, Value};
    let mut tasks: Vec<Value> = Vec::new();
    for t in s
        .tasks
        .iter()
        .filter(|t| matches!(t.state, TaskState::Running | TaskState::Cancelling))
    {
        tasks.push(json!({
            "state": t.state.as_str(),
            "retried": t.retries,
            "phase": t.phase.as_str(),
            "message": t.message,
            "command": format!("SELECT move_shard({}, '{}', ...)", t.shard_id, t.target),
            "task_id": t.task_id,
            "hosts": {"source": t.source, "target": t.target},
            "size": {"source": pretty(t.bytes_total), "target": pretty(t.bytes_done)},
        }));
    }
    for t in s.tasks.iter().filter(|t| {
        t.state == TaskState::Error || (t.state == TaskState::Runnable && t.retries > 0)
    }) {
        tasks.push(json!({
            "state": t.state.as_str(),
            "retried": t.retries,
            "message": t.message,
            "command": format!("SELECT move_shard({}, '{}', ...)", t.shard_id, t.target),
            "task_id": t.task_id,
        }));
    }
    let mut counts = Map::new();
    for t in &s.tasks {
        let n = counts
            .get(t.state.as_str())
            .and_then(Value::as_i64)
            .unwrap_or(0);
        counts.insert(t.state.to_string(), Value::from(n + 1));
    }
    jsonb_text(&json!({"tasks": tasks, "task_state_counts": Value::Object(counts)}))
}

fn status_batch(citus: bool, s: Option<&JobStatus>) -> Result<RecordBatch, PgError> {
    let ts = |v: Option<i64>| {
        Arc::new(arrow::array::TimestampMillisecondArray::from(vec![v]).with_timezone("UTC"))
            as ArrayRef
    };
    let Some(s) = s else {
        let schema = if citus {
            views::citus_rebalance_status_schema()
        } else {
            views::rebalance_status_schema()
        };
        return Ok(RecordBatch::new_empty(schema));
    };
    let j = &s.job;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![j.job_id])),
        Arc::new(StringArray::from(vec![j.state.to_string()])),
        Arc::new(StringArray::from(vec![j.job_type.to_string()])),
        Arc::new(StringArray::from(vec![j.description.clone()])),
        ts(j.started_at_ms),
        ts(j.finished_at_ms),
        Arc::new(StringArray::from(vec![details(s)])),
    ];
    if citus {
        return batch(views::citus_rebalance_status_schema(), cols);
    }
    cols.extend([
        Arc::new(Float64Array::from(vec![s.progress()])) as ArrayRef,
        Arc::new(Int64Array::from(vec![s.bytes_total as i64])),
        Arc::new(Int64Array::from(vec![s.bytes_done as i64])),
        Arc::new(Float64Array::from(vec![s.rate_bytes_per_s])),
        Arc::new(Float64Array::from(vec![s.eta_seconds])),
        Arc::new(StringArray::from(vec![s.last_error.clone()])),
    ]);
    batch(views::rebalance_status_schema(), cols)
}

#[cfg(test)]
mod tests;
